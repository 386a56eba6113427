package analysis_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/analysis"
	"spottrain/configs"
)

func TestNewStat(t *testing.T) {
	assert.Equal(t, analysis.Stat{}, analysis.NewStat(nil))
	assert.Equal(t, analysis.Stat{Mean: 5, Lo: 5, Hi: 5, N: 1}, analysis.NewStat([]float64{5}))

	// Mean 2, sample sd 1; Student's t(0.975, 2 dof) = 4.302653 (scipy.stats.t.ppf(0.975, 2)).
	s := analysis.NewStat([]float64{1, 2, 3})
	assert.Equal(t, 3, s.N)
	assert.InDelta(t, 2, s.Mean, 1e-12)
	assert.InDelta(t, 4.302653/math.Sqrt(3), s.Half(), 1e-5)
	assert.InDelta(t, 2-4.302653/math.Sqrt(3), s.Lo, 1e-5)
	assert.Equal(t, "2.000 ± 2.484", s.String())
	assert.Equal(t, "64.79 ± 146.32", analysis.Stat{Mean: 64.7912, Lo: 64.7912 - 146.321, Hi: 64.7912 + 146.321, N: 3}.String())
	assert.Equal(t, "0.0227 ± 0.0068", analysis.Stat{Mean: 0.02266, Lo: 0.02266 - 0.0068, Hi: 0.02266 + 0.0068, N: 3}.String())
	assert.Equal(t, "1234", analysis.Stat{Mean: 1234.4, N: 1}.String())

	// t(0.975, 9 dof) = 2.262157.
	xs := []float64{10, 12, 11, 13, 9, 10, 12, 11, 10, 12}
	s = analysis.NewStat(xs)
	assert.InDelta(t, 11, s.Mean, 1e-12)
	sd := math.Sqrt(14.0 / 9) // squared deviations from 11 sum to 14
	assert.InDelta(t, 2.262157*sd/math.Sqrt(10), s.Half(), 1e-5)
}

func TestBreakEven(t *testing.T) {
	// Spot at 40% of on demand, the same hours without interruptions, 6 minutes per
	// interruption: spot pays up to (1 - 0.4) / 0.1 = 6 interruptions per hour.
	assert.InDelta(t, 6, analysis.BreakEven(0.4, 1, 1, 0.1), 1e-12)
	assert.InDelta(t, 0.6, analysis.SavingsAt(0, 0.4, 1, 1, 0.1), 1e-12)
	assert.InDelta(t, 0, analysis.SavingsAt(6, 0.4, 1, 1, 0.1), 1e-12)
	assert.Less(t, analysis.SavingsAt(7, 0.4, 1, 1, 0.1), 0.0)
	assert.True(t, math.IsInf(analysis.SavingsAt(10, 0.4, 1, 1, 0.1), -1), "at 10/h with 6 min each the job never ends")

	// A spot job 10% slower without interruptions has less margin.
	assert.InDelta(t, (1-0.44)/0.1, analysis.BreakEven(0.4, 1.1, 1, 0.1), 1e-12)
	assert.True(t, math.IsInf(analysis.BreakEven(0.4, 1, 1, 0), 1), "free interruptions never break even")
	assert.Equal(t, 0.0, analysis.BreakEven(0.5, 2.5, 1, 0.1), "more than twice as slow at half the price never pays")
}

// run makes a completed run for NewStudy.
func run(name, strategy, pattern string, index int, billedS, restartS, wastedS float64, interruptions int, metric float64) *analysis.RunMetrics {
	return &analysis.RunMetrics{
		Name: name, Index: index, Model: "lstm-solar", Strategy: strategy, Pattern: pattern, NoNoticeShare: 0.25,
		TrainingHash: "h", TimeScale: 1, Completed: true, WallS: billedS, BilledS: billedS,
		RestartS: restartS, WastedS: wastedS, Kills: interruptions, Metric: "rmse_kw", MetricValue: metric,
		Prices: configs.Prices{GPU: "x", SpotPerHour: 0.4, OnDemandPerHour: 1},
	}
}

func TestNewStudy(t *testing.T) {
	runs := []*analysis.RunMetrics{
		run("m-fixed-poisson", "fixed", "poisson", 1, 3600+720, 360, 360, 2, 0.31),
		run("m-ondemand", "fixed", "none", 0, 3600, 0, 0, 0, 0.3),
		run("m-fixed-poisson", "fixed", "poisson", 0, 3600+360, 180, 180, 1, 0.29),
		run("m-ondemand", "fixed", "none", 1, 3600, 0, 0, 0, 0.3),
		{Name: "m-fixed-poisson", Index: 2, Pattern: "poisson", Completed: false},
	}
	// The same experiment without notice is a group of its own.
	killOnly := run("m-fixed-poisson", "fixed", "poisson", 0, 7200, 0, 0, 0, 0.3)
	killOnly.NoNoticeShare = 1
	runs = append(runs, killOnly)

	s := analysis.NewStudy(runs)
	require.Len(t, s.Incomplete, 1)
	require.Len(t, s.Groups, 3)
	base, g, k := s.Groups[0], s.Groups[1], s.Groups[2]
	assert.True(t, base.IsBaseline())
	assert.Nil(t, base.Baseline)
	assert.Same(t, base, g.Baseline)
	assert.Same(t, base, k.Baseline)
	assert.Equal(t, "25% kills", g.Scenario())
	assert.Equal(t, "kills only", k.Scenario())
	assert.Equal(t, []int{0, 1}, []int{g.Runs[0].Index, g.Runs[1].Index}, "runs sorted by index")

	assert.InDelta(t, 1.0, base.CostUSD.Mean, 1e-12, "one hour on demand at $1")
	assert.InDelta(t, 0.4*(1.1+1.2)/2, g.CostUSD.Mean, 1e-12)
	assert.InDelta(t, 1-0.4*1.15, g.Savings.Mean, 1e-12)
	assert.InDelta(t, 1-0.4*1.1, g.SavingsOf(g.Runs[0]), 1e-12)
	assert.InDelta(t, 0.3, g.Metric.Mean, 1e-12)
	assert.InDelta(t, 1.5, g.Interruptions.Mean, 1e-12)
	// Each interruption cost 6 minutes (restart and lost work), and without them the job bills
	// one hour, as on demand: break-even at (1 - 0.4) / 0.1 h.
	assert.InDelta(t, 6, g.PerInterruptionMin.Mean, 1e-9)
	assert.InDelta(t, 1, g.QuietH.Mean, 1e-9)
	assert.InDelta(t, 6, g.BreakEven, 1e-9)
	assert.True(t, math.IsInf(k.BreakEven, 1), "no interruption cost anything")
	assert.True(t, math.IsNaN(base.BreakEven))

	curves := s.Curves()
	require.Len(t, curves, 2)
	assert.Equal(t, "fixed", curves[0].Strategy)
	assert.InDelta(t, 6, curves[0].BreakEven, 1e-9)
	assert.InDelta(t, 0.6, curves[0].SavingsAt(0), 1e-9)
}

func TestNewStudyWithoutBaseline(t *testing.T) {
	s := analysis.NewStudy([]*analysis.RunMetrics{run("m-fixed-poisson", "fixed", "poisson", 0, 3600, 60, 0, 1, 0.3)})
	require.Len(t, s.Groups, 1)
	assert.Nil(t, s.Groups[0].Baseline)
	assert.True(t, math.IsNaN(s.Groups[0].BreakEven))
	assert.Equal(t, analysis.Stat{}, s.Groups[0].Savings)
	assert.True(t, math.IsNaN(s.Groups[0].SavingsOf(s.Groups[0].Runs[0])))
	assert.Empty(t, s.Curves())
}

// TestSlowdown: a run that took half again as long for the same useful work is named slow.
func TestSlowdown(t *testing.T) {
	var runs []*analysis.RunMetrics
	for i, useful := range []float64{100, 110, 150, 90} {
		r := run("m-fixed-poisson", "fixed", "poisson", i, 3600, 0, 0, 0, 0.3)
		r.UsefulS = useful
		runs = append(runs, r)
	}
	other := run("m2-ondemand", "fixed", "none", 0, 3600, 0, 0, 0, 0.3)
	other.TrainingHash, other.UsefulS = "h2", 1000
	runs = append(runs, other, &analysis.RunMetrics{Name: "m-fixed-poisson", TrainingHash: "h"})
	s := analysis.NewStudy(runs)
	assert.InDelta(t, 100/105.0, s.Slowdown[runs[0]], 1e-12, "median of 90, 100, 110, 150 is 105")
	assert.InDelta(t, 150/105.0, s.Slowdown[runs[2]], 1e-12)
	assert.InDelta(t, 1, s.Slowdown[other], 1e-12, "compared only with runs of the same training")
	assert.NotContains(t, s.Slowdown, runs[5], "not completed")
	assert.Equal(t, []*analysis.RunMetrics{runs[2]}, s.SlowRuns(1.2))
}
