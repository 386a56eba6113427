package checkpoint_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newStrategy(t *testing.T, c checkpoint.StrategyConfig) checkpoint.Strategy {
	t.Helper()
	s := checkpoint.NewStrategy(c)
	require.Equal(t, c.Name, s.Name())
	return s
}

func adaptiveConfig() checkpoint.StrategyConfig {
	return checkpoint.StrategyConfig{Name: "adaptive", Min: time.Minute, Max: 48 * time.Hour,
		PriorMTBI: 24 * time.Hour, EMA: 1}
}

func newAdaptive(t *testing.T, c checkpoint.StrategyConfig) *checkpoint.Adaptive {
	t.Helper()
	a, ok := newStrategy(t, c).(*checkpoint.Adaptive)
	require.True(t, ok)
	return a
}

// TestDalyPublishedValues checks the intervals against the values in Daly's paper.
func TestDalyPublishedValues(t *testing.T) {
	near := func(want, got, tol time.Duration, msg string) {
		t.Helper()
		assert.InDelta(t, float64(want), float64(got), float64(tol), "%s: got %v", msg, got)
	}
	c := 5 * time.Minute
	near(117*time.Minute, checkpoint.DalyInterval(c, 24*time.Hour), time.Minute, "Daly 24h")
	near(57*time.Minute, checkpoint.DalyInterval(c, 6*time.Hour), time.Minute, "Daly 6h")
	near(120*time.Minute, checkpoint.YoungInterval(c, 24*time.Hour), time.Second, "Young 24h")

	assert.Equal(t, time.Hour, checkpoint.DalyInterval(2*time.Hour, time.Hour), "C = 2M")
	assert.Equal(t, time.Hour, checkpoint.DalyInterval(5*time.Hour, time.Hour), "C > 2M")
	assert.Equal(t, time.Duration(0), checkpoint.DalyInterval(0, time.Hour), "free checkpoints")
	assert.Equal(t, time.Duration(0), checkpoint.YoungInterval(0, time.Hour))
	// Daly's correction lengthens Young's interval a little, minus the cost.
	young := checkpoint.YoungInterval(time.Minute, time.Hour)
	daly := checkpoint.DalyInterval(time.Minute, time.Hour)
	assert.Greater(t, daly, young-time.Minute)
	assert.Less(t, daly, young)
	// No overflow at the extremes.
	huge := time.Duration(math.MaxInt64)
	assert.Equal(t, huge, checkpoint.YoungInterval(huge, huge))
	assert.Positive(t, checkpoint.DalyInterval(huge, huge))
	young, daly = checkpoint.YoungInterval(time.Hour, huge), checkpoint.DalyInterval(time.Hour, huge)
	assert.InEpsilon(t, float64(young), float64(daly), 0.01, "C << M: Daly is about Young")
}

// TestFixedDue drives the fixed strategy through sequences of steps and checkpoints.
func TestFixedDue(t *testing.T) {
	type call struct {
		step int
		at   time.Duration // since Start
		ckpt bool          // Checkpointed (blocking 0) instead of Due
		want bool          // Due's answer
	}
	tests := []struct {
		name       string
		everySteps int
		every      time.Duration
		calls      []call
	}{
		{"steps", 3, 0, []call{
			{1, 1, false, false}, {2, 2, false, false}, {3, 3, false, true}, {3, 3, true, false},
			{4, 4, false, false}, {5, 5, false, false}, {6, time.Hour, false, true},
		}},
		{"time since start", 0, 10 * time.Second, []call{
			{1, 9 * time.Second, false, false}, {2, 10 * time.Second, false, true},
		}},
		{"time since last checkpoint", 0, 10 * time.Second, []call{
			{1, 10 * time.Second, false, true}, {1, 11 * time.Second, true, false},
			{2, 20 * time.Second, false, false}, {3, 21 * time.Second, false, true},
		}},
		{"emergency checkpoint restarts the timer", 0, 10 * time.Second, []call{
			{1, 8 * time.Second, true, false}, {2, 12 * time.Second, false, false},
			{3, 17 * time.Second, false, false}, {4, 18 * time.Second, false, true},
		}},
		{"steps or time", 5, 10 * time.Second, []call{
			{1, time.Second, false, false}, {5, 2 * time.Second, false, true}, {5, 2 * time.Second, true, false},
			{6, 11 * time.Second, false, false}, {7, 12 * time.Second, false, true}, {7, 13 * time.Second, true, false},
			{10, 14 * time.Second, false, true},
		}},
		{"never twice for a checkpointed step", 2, time.Second, []call{
			{4, time.Second, true, false}, {4, time.Hour, false, false}, {5, time.Hour, false, true},
		}},
		{"never twice for a step found due", 2, time.Second, []call{
			{4, 0, false, true}, {4, time.Hour, false, false}, {5, time.Hour, false, true}, {5, time.Hour, false, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStrategy(t, checkpoint.StrategyConfig{Name: "fixed", EverySteps: tt.everySteps, Every: tt.every})
			s.Start(t0)
			for i, c := range tt.calls {
				if c.ckpt {
					s.Checkpointed(c.step, t0.Add(c.at), 0)
					continue
				}
				assert.Equal(t, c.want, s.Due(c.step, t0.Add(c.at)), "call %d: Due(%d, +%v)", i, c.step, c.at)
			}
			assert.False(t, s.Validated(1, 0.5))
		})
	}
}

// TestAdaptiveConverges simulates a run on spot instances: interruptions without notice come at
// exponential times of mean m (a Poisson process), and in the second case interruptions with
// notice as well, as many again. Each incarnation is a new strategy that replays the run's
// interruptions, takes checkpoints when Due says, each blocking for about c, and is interrupted.
// The estimates of a last incarnation must approach c and m, and its interval Daly's. With EMA
// 0.02 the relative spread of the M estimate is about sqrt(0.02/1.98) = 10% (an exponential's
// standard deviation is its mean), so 30% is about 3 sigma: 200 seeds all passed.
func TestAdaptiveConverges(t *testing.T) {
	const (
		c             = 2 * time.Minute
		m             = 3 * time.Hour
		stepTime      = 10 * time.Second
		interruptions = 400 // without notice
	)
	tests := []struct {
		name       string
		noticeMTBI time.Duration // 0: none
	}{
		{"without notice", 0},
		{"with notice as well", m},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			cfg := checkpoint.StrategyConfig{Name: "adaptive", Min: time.Minute, Max: 24 * time.Hour,
				PriorMTBI: 30 * 24 * time.Hour, EMA: 0.02}
			exp := func(mean time.Duration) time.Duration {
				return time.Duration(rng.ExpFloat64() * float64(mean))
			}
			blocking := func() time.Duration { // c ± 20%
				return time.Duration(float64(c) * (0.8 + 0.4*rng.Float64()))
			}
			type past struct {
				uptime time.Duration
				notice bool
			}
			var history []past
			incarnation := func(now time.Time) *checkpoint.Adaptive {
				a := newAdaptive(t, cfg)
				for _, p := range history {
					a.Interrupted(p.uptime, p.notice)
				}
				a.Start(now)
				return a
			}

			now, step, checkpoints := t0, 0, 0
			for failures := 0; failures < interruptions; {
				// Two Poisson processes: the next interruption is the earlier of two exponentials.
				uptime, notice := exp(m), false
				if tt.noticeMTBI > 0 {
					if u := exp(tt.noticeMTBI); u < uptime {
						uptime, notice = u, true
					}
				}
				start := now
				a := incarnation(start)
				for now.Add(stepTime).Sub(start) < uptime {
					now = now.Add(stepTime)
					step++
					if a.Due(step, now) {
						b := blocking()
						now = now.Add(b)
						a.Checkpointed(step, now, b)
						checkpoints++
					}
				}
				now = start.Add(uptime)
				history = append(history, past{uptime, notice})
				if !notice {
					failures++
				}
			}
			require.Greater(t, checkpoints, interruptions)

			// A last incarnation, shortly after its start: a few checkpoints measured.
			a := incarnation(now)
			for range 5 {
				now = now.Add(10 * time.Minute)
				step++
				b := blocking()
				now = now.Add(b)
				a.Checkpointed(step, now, b)
			}
			gotC, gotM := a.Estimates(now)
			t.Logf("C %v (true %v), M %v (true %v), interval %v (Daly %v)",
				gotC, c, gotM, m, a.Interval(now), checkpoint.DalyInterval(c, m))
			assert.InEpsilon(t, float64(c), float64(gotC), 0.2, "C")
			assert.InEpsilon(t, float64(m), float64(gotM), 0.3, "M")
			assert.InEpsilon(t, float64(checkpoint.DalyInterval(c, m)), float64(a.Interval(now)), 0.25, "interval")
		})
	}
}

// TestAdaptiveBeforeMeasurement: with no blocking time measured yet, the interval is Min.
func TestAdaptiveBeforeMeasurement(t *testing.T) {
	a := newAdaptive(t, adaptiveConfig())
	a.Start(t0)
	assert.Equal(t, time.Minute, a.Interval(t0))
	c, m := a.Estimates(t0)
	assert.Equal(t, time.Duration(0), c)
	assert.Equal(t, 24*time.Hour, m, "the prior")
	assert.False(t, a.Due(1, t0.Add(time.Minute-1)))
	assert.True(t, a.Due(2, t0.Add(time.Minute)))
	assert.False(t, a.Due(2, t0.Add(time.Hour)), "never twice for a step")
	assert.False(t, a.Validated(2, 0.1))
}

// TestAdaptiveDaly: with exact estimates (EMA 1), the interval is Daly's, and Due follows it.
func TestAdaptiveDaly(t *testing.T) {
	a := newAdaptive(t, adaptiveConfig())
	a.Interrupted(24*time.Hour, false)
	a.Start(t0)
	a.Checkpointed(1, t0, 5*time.Minute)
	want := checkpoint.DalyInterval(5*time.Minute, 24*time.Hour)
	assert.Equal(t, want, a.Interval(t0))
	assert.False(t, a.Due(2, t0.Add(want-1)))
	assert.True(t, a.Due(3, t0.Add(want)))
	a.Checkpointed(3, t0.Add(want), 5*time.Minute)
	assert.False(t, a.Due(3, t0.Add(3*want)), "the step just checkpointed")
}

// TestAdaptiveEMA: observations move the averages by their weight, the first one replacing the
// prior.
func TestAdaptiveEMA(t *testing.T) {
	cfg := adaptiveConfig()
	cfg.EMA = 0.5
	a := newAdaptive(t, cfg)
	a.Interrupted(2*time.Hour, false)
	a.Interrupted(4*time.Hour, false)
	a.Start(t0)
	a.Checkpointed(1, t0, 10*time.Second)
	a.Checkpointed(2, t0, 20*time.Second)
	c, m := a.Estimates(t0)
	assert.Equal(t, 15*time.Second, c)
	assert.Equal(t, 3*time.Hour, m)
}

// TestAdaptiveNotice: interruptions with notice do not move M; their uptime counts towards the
// next interruption without notice.
func TestAdaptiveNotice(t *testing.T) {
	a := newAdaptive(t, adaptiveConfig())
	a.Interrupted(time.Hour, true)
	_, m := a.Estimates(t0)
	assert.Equal(t, 24*time.Hour, m, "notice before any observation: still the prior")

	a.Interrupted(2*time.Hour, false)
	_, m = a.Estimates(t0)
	assert.Equal(t, 3*time.Hour, m, "carried uptime plus the uptime of the interruption")

	for range 10 {
		a.Interrupted(time.Minute, true)
		_, got := a.Estimates(t0)
		assert.Equal(t, m, got, "notice does not move M")
	}
}

// TestAdaptiveUptimeBound: the current incarnation's uptime is a lower bound on M.
func TestAdaptiveUptimeBound(t *testing.T) {
	a := newAdaptive(t, adaptiveConfig())
	a.Interrupted(time.Hour, false)
	a.Start(t0)
	a.Checkpointed(1, t0, 30*time.Second)
	for _, tt := range []struct {
		uptime, wantM time.Duration
	}{
		{0, time.Hour},
		{30 * time.Minute, time.Hour},
		{5 * time.Hour, 5 * time.Hour},
	} {
		c, m := a.Estimates(t0.Add(tt.uptime))
		assert.Equal(t, 30*time.Second, c)
		assert.Equal(t, tt.wantM, m, "uptime %v", tt.uptime)
		assert.Equal(t, checkpoint.DalyInterval(30*time.Second, tt.wantM), a.Interval(t0.Add(tt.uptime)))
	}
}

// TestAdaptiveClamp: whatever the measurements, the interval stays within [Min, Max].
func TestAdaptiveClamp(t *testing.T) {
	huge := time.Duration(math.MaxInt64)
	tests := []struct {
		name     string
		blocking time.Duration
		uptimes  []time.Duration // interruptions without notice
		at       time.Duration   // since Start
		want     time.Duration   // 0: only check the bounds
	}{
		{"free checkpoints", 0, []time.Duration{time.Hour}, 0, time.Minute},
		{"negative blocking", -time.Hour, []time.Duration{time.Hour}, 0, time.Minute},
		{"interrupted at once", time.Minute, []time.Duration{0, 0, 0}, 0, time.Minute},
		{"negative uptime", time.Minute, []time.Duration{-time.Hour}, 0, time.Minute},
		{"never interrupted", time.Second, []time.Duration{huge, huge}, 0, time.Hour},
		{"expensive checkpoints", 1000 * time.Hour, nil, 0, time.Hour},
		{"everything huge", huge, []time.Duration{huge}, 0, time.Hour},
		{"long uptime", time.Minute, nil, 100 * 365 * 24 * time.Hour, time.Hour},
		{"in between", 20 * time.Second, []time.Duration{time.Hour}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := adaptiveConfig()
			cfg.Max = time.Hour
			a := newAdaptive(t, cfg)
			for _, u := range tt.uptimes {
				a.Interrupted(u, false)
			}
			a.Start(t0)
			a.Checkpointed(1, t0, tt.blocking)
			got := a.Interval(t0.Add(tt.at))
			assert.GreaterOrEqual(t, got, cfg.Min)
			assert.LessOrEqual(t, got, cfg.Max)
			if tt.want != 0 {
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

// TestMilestone feeds metric sequences and checks which ones are improvements.
func TestMilestone(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	tests := []struct {
		name    string
		mode    string
		seed    []float64 // SeedBest calls before the sequence
		metrics []float64
		want    []bool
	}{
		{"min", "min", nil, []float64{1, 0.5, 0.5, 0.7, 0.4}, []bool{true, true, false, false, true}},
		{"max", "max", nil, []float64{0.1, 0.5, 0.5, 0.3, 0.9}, []bool{true, true, false, false, true}},
		{"nan first", "min", nil, []float64{nan, 2, nan, 1}, []bool{false, true, false, true}},
		{"infinities", "max", nil, []float64{inf, -inf, 0, inf}, []bool{false, false, true, false}},
		{"first finite improves", "max", nil, []float64{-1e300}, []bool{true}},
		{"seed min", "min", []float64{0.5}, []float64{0.6, 0.5, 0.4}, []bool{false, false, true}},
		{"seed max", "max", []float64{0.5}, []float64{0.4, 0.5, 0.6}, []bool{false, false, true}},
		{"seed keeps the better", "min", []float64{0.5, 0.9}, []float64{0.6, 0.45}, []bool{false, true}},
		{"seed nan ignored", "min", []float64{nan}, []float64{10}, []bool{true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStrategy(t, checkpoint.StrategyConfig{Name: "milestone", Mode: tt.mode})
			seeder, ok := s.(checkpoint.BestSeeder)
			require.True(t, ok)
			for _, v := range tt.seed {
				seeder.SeedBest(v)
			}
			s.Start(t0)
			for i, v := range tt.metrics {
				assert.False(t, s.Due(i+1, t0.Add(time.Duration(i)*time.Hour)))
				assert.Equal(t, tt.want[i], s.Validated(i+1, v), "metric %d: %v", i, v)
			}
		})
	}
}

// TestMilestoneBest: the best value is the last improvement.
func TestMilestoneBest(t *testing.T) {
	s := newStrategy(t, checkpoint.StrategyConfig{Name: "milestone", Mode: "min"}).(*checkpoint.Milestone)
	_, ok := s.Best()
	assert.False(t, ok)
	s.Validated(1, 3)
	s.Validated(2, 2)
	s.Validated(3, 2.5)
	best, ok := s.Best()
	assert.True(t, ok)
	assert.Equal(t, 2.0, best)
}

// TestNewStrategyUnknown: an unknown name is a programmer's mistake (configs validates it).
func TestNewStrategyUnknown(t *testing.T) {
	assert.PanicsWithValue(t, `checkpoint: unknown strategy "Fixed"`, func() {
		checkpoint.NewStrategy(checkpoint.StrategyConfig{Name: "Fixed", EverySteps: 1})
	})
}

// TestNewStrategyValid: valid configurations, with the fields of other strategies ignored.
func TestNewStrategyValid(t *testing.T) {
	for _, c := range []checkpoint.StrategyConfig{
		{Name: "fixed", EverySteps: 1},
		{Name: "fixed", Every: time.Second, Min: -1, Mode: "bogus"},
		{Name: "adaptive", Min: time.Second, Max: time.Second, PriorMTBI: time.Hour, EMA: 1, EverySteps: -1},
		{Name: "milestone", Mode: "max", EMA: 7},
	} {
		newStrategy(t, c)
	}
}
