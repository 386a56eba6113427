package preemption_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/preemption"
)

const draws = 20000

// gaps draws n gaps (hours) from p with seed.
func gaps(t *testing.T, p preemption.Pattern, seed uint64, n int) []float64 {
	t.Helper()
	s, err := preemption.NewSchedule(p, seed, 0)
	require.NoError(t, err)
	out := make([]float64, n)
	var last time.Duration
	for i := range out {
		it := s.Next()
		out[i] = (it.At - last).Hours()
		last = it.At
	}
	return out
}

func meanCV(xs []float64) (mean, cv float64) {
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss/float64(len(xs)-1)) / mean
}

func TestRegularGaps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jitter float64
	}{{"Exact", 0}, {"Jitter", 0.2}} {
		t.Run(tc.name, func(t *testing.T) {
			every := 90 * time.Minute
			g := gaps(t, preemption.Regular{Every: every, Jitter: tc.jitter}, 7, 1000)
			distinct := map[float64]bool{}
			for _, h := range g {
				assert.InDelta(t, every.Hours(), h, every.Hours()*tc.jitter+1e-12)
				distinct[h] = true
			}
			if tc.jitter == 0 {
				assert.Len(t, distinct, 1)
			} else {
				assert.Greater(t, len(distinct), 900)
			}
		})
	}
}

func TestPoissonGaps(t *testing.T) {
	const rate = 6.0 // per hour
	mean, cv := meanCV(gaps(t, preemption.Poisson{Rate: rate}, 42, draws))
	// Exponential gaps: the sample mean's standard error is mean/sqrt(20000) ≈ 0.7%, so 3% is
	// over 4 standard errors. The CV's standard error is about sqrt((9-1)/(4n)) ≈ 0.01 (kurtosis
	// 9), so 0.05 is 5 of them.
	assert.InEpsilon(t, 1/rate, mean, 0.03)
	assert.InDelta(t, 1, cv, 0.05)
}

func TestBurstyIsClustered(t *testing.T) {
	b := preemption.Bursty{QuietRate: 1, StormRate: 30, QuietMean: 10 * time.Hour, StormMean: time.Hour}
	// Long-run rate: (1*10 + 30*1) / 11 ≈ 3.64 per hour.
	rate := (b.QuietRate*b.QuietMean.Hours() + b.StormRate*b.StormMean.Hours()) / (b.QuietMean + b.StormMean).Hours()
	bMean, bCV := meanCV(gaps(t, b, 42, draws))
	_, pCV := meanCV(gaps(t, preemption.Poisson{Rate: rate}, 42, draws))
	t.Logf("bursty: mean gap %.3f h (1/rate %.3f h), CV %.2f; Poisson CV %.2f", bMean, 1/rate, bCV, pCV)
	// 20000 interrupts span ~500 quiet/storm cycles, whose interrupt counts vary a lot (a storm's
	// count is geometric-like, mean 30), so the mean gap is only good to several percent: 15%.
	assert.InEpsilon(t, 1/rate, bMean, 0.15)
	// Poisson's CV is 1 ± 0.05 (see TestPoissonGaps); these bursts give about 2.3.
	assert.Greater(t, bCV, 1.5)
	assert.Greater(t, bCV, pCV+0.4)
}

func TestScheduleDeterministic(t *testing.T) {
	patterns := map[string]preemption.Pattern{
		"Regular": preemption.Regular{Every: time.Hour, Jitter: 0.5},
		"Poisson": preemption.Poisson{Rate: 2},
		"Bursty":  preemption.Bursty{QuietRate: 0, StormRate: 20, QuietMean: 5 * time.Hour, StormMean: time.Hour},
	}
	draw := func(p preemption.Pattern, seed uint64) []preemption.Interrupt {
		s, err := preemption.NewSchedule(p, seed, 0.5)
		require.NoError(t, err)
		out := make([]preemption.Interrupt, 100)
		for i := range out {
			out[i] = s.Next()
		}
		return out
	}
	for name, p := range patterns {
		t.Run(name, func(t *testing.T) {
			a := draw(p, 1)
			assert.Equal(t, a, draw(p, 1))
			assert.NotEqual(t, a, draw(p, 2))
			for i := 1; i < len(a); i++ {
				assert.Greater(t, a[i].At, a[i-1].At)
			}
		})
	}
}

func TestNoNoticeShare(t *testing.T) {
	for _, share := range []float64{0, 0.3, 1} {
		s, err := preemption.NewSchedule(preemption.Poisson{Rate: 1}, 9, share)
		require.NoError(t, err)
		without := 0
		for range draws {
			if !s.Next().Notice {
				without++
			}
		}
		// Binomial standard error: sqrt(0.3*0.7/20000) ≈ 0.0032; 0.015 is over 4 of them.
		assert.InDelta(t, share, float64(without)/draws, 0.015, "share %g", share)
	}
}

func TestNoticeDrawsDoNotMoveTimes(t *testing.T) {
	at := func(share float64) []time.Duration {
		s, err := preemption.NewSchedule(preemption.Poisson{Rate: 3}, 5, share)
		require.NoError(t, err)
		out := make([]time.Duration, 50)
		for i := range out {
			out[i] = s.Next().At
		}
		return out
	}
	assert.Equal(t, at(0), at(0.7))
}

func TestConfigBad(t *testing.T) {
	good := preemption.Config{Pattern: "poisson", RatePerHour: 1}.WithDefaults()
	require.NoError(t, good.Validate())
	for _, tc := range []struct {
		name  string
		edit  func(*preemption.Config)
		field string
	}{
		{"UnknownPattern", func(c *preemption.Config) { c.Pattern = "weekly" }, "pattern"},
		{"ZeroRate", func(c *preemption.Config) { c.RatePerHour = 0 }, "rate_per_hour"},
		{"NaNRate", func(c *preemption.Config) { c.RatePerHour = math.NaN() }, "rate_per_hour"},
		{"RegularZeroEvery", func(c *preemption.Config) { c.Pattern = "regular" }, "every"},
		{"RegularJitter", func(c *preemption.Config) { c.Pattern, c.Every, c.Jitter = "regular", time.Hour, 1 }, "jitter"},
		{"BurstyNoStorm", func(c *preemption.Config) {
			c.Pattern, c.QuietMean, c.StormMean = "bursty", time.Hour, time.Hour
		}, "storm_rate_per_hour"},
		{"BurstyNegativeQuiet", func(c *preemption.Config) {
			c.Pattern, c.QuietRatePerHour, c.StormRatePerHour, c.QuietMean, c.StormMean = "bursty", -1, 5, time.Hour, time.Hour
		}, "quiet_rate_per_hour"},
		{"BurstyNoQuietMean", func(c *preemption.Config) { c.Pattern, c.StormRatePerHour, c.StormMean = "bursty", 5, time.Hour }, "quiet_mean"},
		{"NoNoticeShare", func(c *preemption.Config) { c.NoNoticeShare = 1.5 }, "no_notice_share"},
		{"NegativeGrace", func(c *preemption.Config) { c.Grace = -time.Second }, "grace"},
		{"NegativeRestartDelay", func(c *preemption.Config) { c.RestartDelay = -time.Second }, "restart_delay"},
		{"NegativeTimeScale", func(c *preemption.Config) { c.TimeScale = -1 }, "time_scale"},
		{"NegativeMachines", func(c *preemption.Config) { c.Machines = -1 }, "machines"},
		{"TooManyMachines", func(c *preemption.Config) { c.Machines = preemption.MaxMachines + 1 }, "machines"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			var fe *preemption.FieldError
			require.True(t, errors.As(err, &fe), "got %v", err)
			assert.Equal(t, tc.field, fe.Key)
			assert.Contains(t, err.Error(), tc.field)
			_, err = c.Schedule()
			assert.Error(t, err)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	c := preemption.Config{Pattern: "regular", Every: time.Hour}
	assert.EqualError(t, c.Validate(), "grace: must be > 0 (got 0s)", "Validate checks c as given")
	s, err := c.Schedule()
	require.NoError(t, err, "Schedule fills the defaults first")
	assert.NotNil(t, s)
	c = c.WithDefaults()
	assert.Equal(t, 30*time.Second, c.Grace)
	assert.Equal(t, 1.0, c.TimeScale)
	assert.Equal(t, 1, c.Machines)
	c.Machines = 0
	assert.EqualError(t, c.Validate(), "machines: must be in [1, 1024] (got 0)")
}

// An on-demand config has no schedule, and the pattern keys do not apply to it.
func TestConfigNone(t *testing.T) {
	c := preemption.Config{Pattern: preemption.PatternNone, RatePerHour: -1, NoNoticeShare: 2}.WithDefaults()
	require.NoError(t, c.Validate())
	s, err := c.Schedule()
	require.NoError(t, err)
	assert.Nil(t, s)
	c.RestartDelay = -time.Second
	assert.EqualError(t, c.Validate(), "restart_delay: must be >= 0 (got -1s)", "the common keys do")
}

// ForRun adds the run index to the seed: repetitions draw other interrupts, each reproducibly.
func TestConfigForRun(t *testing.T) {
	c := preemption.Config{Pattern: "poisson", RatePerHour: 1, Seed: 7}
	assert.Equal(t, uint64(7), c.ForRun(0).Seed)
	assert.Equal(t, uint64(10), c.ForRun(3).Seed)
	assert.Equal(t, uint64(7), c.Seed, "c itself is unchanged")
	first := func(c preemption.Config) time.Duration {
		s, err := c.Schedule()
		require.NoError(t, err)
		return s.Next().At
	}
	assert.Equal(t, first(c.ForRun(1)), first(c.ForRun(1)))
	assert.NotEqual(t, first(c.ForRun(0)), first(c.ForRun(1)))
}

// Bursty with QuietRate 0 still makes progress (interrupts only in storms).
func TestBurstyQuietZero(t *testing.T) {
	g := gaps(t, preemption.Bursty{StormRate: 10, QuietMean: time.Hour, StormMean: time.Hour}, 3, 100)
	for _, h := range g {
		assert.Greater(t, h, 0.0)
	}
}

// jobDraws draws n interrupts of a job of machines machines.
func jobDraws(t *testing.T, p preemption.Pattern, seed uint64, share float64, machines, n int) []preemption.Interrupt {
	t.Helper()
	s, err := preemption.NewJobSchedule(p, seed, share, machines)
	require.NoError(t, err)
	require.Equal(t, machines, s.Machines())
	out := make([]preemption.Interrupt, n)
	for i := range out {
		out[i] = s.Next()
	}
	return out
}

// The job's interrupts merge its machines' streams, earliest first: machine 0's stream is the
// one-machine schedule of the same seed, every machine's interrupts come in order, and the
// merged stream is deterministic per seed.
func TestJobScheduleMerges(t *testing.T) {
	p := preemption.Poisson{Rate: 1}
	one := jobDraws(t, p, 11, 0.25, 1, 600)
	job := jobDraws(t, p, 11, 0.25, 3, 600)
	assert.Equal(t, job, jobDraws(t, p, 11, 0.25, 3, 600), "the same seed draws the same")
	assert.NotEqual(t, job, jobDraws(t, p, 12, 0.25, 3, 600))
	var zero []preemption.Interrupt
	last := map[int]time.Duration{}
	for i, it := range job {
		if i > 0 {
			assert.GreaterOrEqual(t, it.At, job[i-1].At, "earliest first")
		}
		require.Contains(t, []int{0, 1, 2}, it.Machine)
		assert.Greater(t, it.At, last[it.Machine])
		last[it.Machine] = it.At
		if it.Machine == 0 {
			zero = append(zero, it)
		}
	}
	require.Greater(t, len(zero), 100)
	assert.Equal(t, one[:len(zero)], zero, "machine 0 draws what a one-machine job draws")
}

// N machines each interrupted at rate λ interrupt the job at N·λ: the merged Poisson stream has
// exponential gaps of mean 1/(Nλ), and each machine takes its share of them.
func TestJobScheduleRate(t *testing.T) {
	const machines = 4
	job := jobDraws(t, preemption.Poisson{Rate: 0.5}, 3, 0, machines, draws)
	gaps := make([]float64, len(job))
	hits := make([]int, machines)
	var last time.Duration
	for i, it := range job {
		gaps[i] = (it.At - last).Hours()
		last = it.At
		hits[it.Machine]++
	}
	mean, cv := meanCV(gaps)
	// Standard error of the mean: 0.5/sqrt(20000) ≈ 0.0035 h; 0.02 h is over 5 of them.
	assert.InDelta(t, 1/(machines*0.5), mean, 0.02)
	assert.InDelta(t, 1, cv, 0.05, "exponential gaps")
	for m, n := range hits {
		// Binomial standard error: sqrt(0.25*0.75/20000) ≈ 0.003.
		assert.InDelta(t, 0.25, float64(n)/draws, 0.015, "machine %d", m)
	}
}

// Machines interrupted at the same instant are one interrupt of the job: a regular pattern
// without jitter interrupts a job of 3 machines as it interrupts one.
func TestJobScheduleSimultaneous(t *testing.T) {
	p := preemption.Regular{Every: time.Hour}
	assert.Equal(t, jobDraws(t, p, 5, 0, 1, 20), jobDraws(t, p, 5, 0, 3, 20))
}
