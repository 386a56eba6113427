package analysis_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/analysis"
)

// machineRuns are runs of a job of n machines (a rank each) made by the model itself: an hour of
// quiet work, 3 notices and a kill, each notice costing E = 0.5 min, the kill L = 15 min, every
// start R(n) = 3 + log2(n) min; and the on-demand run of an hour.
func machineRuns(n int) []*analysis.RunMetrics {
	restart := 60 * (3 + math.Log2(float64(n))) * 4
	spot := run("m-fixed-poisson", "fixed", "poisson", 0, 3600+restart+3*30+900, restart, 900, 1, 0.3)
	spot.Notices, spot.EmergencyS = 3, 90
	base := run("m-ondemand", "fixed", "none", 0, 3600, 0, 0, 0, 0.3)
	for _, r := range []*analysis.RunMetrics{spot, base} {
		r.Machines, r.World, r.ProcS = n, n, r.BilledS*float64(n)
	}
	return []*analysis.RunMetrics{spot, base}
}

// The model fitted to runs that follow it finds its parameters again, and gives back the
// savings the runs measured at their own rate.
func TestScaleFit(t *testing.T) {
	var runs []*analysis.RunMetrics
	for _, n := range []int{1, 2, 4} {
		runs = append(runs, machineRuns(n)...)
	}
	s := analysis.NewStudy(runs)
	require.Len(t, s.Groups, 6)
	for _, g := range s.Groups {
		if !g.IsBaseline() {
			require.NotNil(t, g.Baseline, g.Scenario())
			assert.Equal(t, g.Machines, g.Baseline.Machines, "the baseline of as many machines")
			assert.InDelta(t, g.BreakEven/float64(g.Machines), g.BreakEvenPerMachine(), 1e-12)
		}
	}
	assert.Equal(t, "25% kills, 4 machines", s.Groups[5].Scenario())

	scales := s.Scales()
	require.Len(t, scales, 1)
	m := scales[0]
	assert.Equal(t, []int{1, 2, 4}, m.Sizes)
	assert.InDelta(t, 3.0/60, m.R0, 1e-9)
	assert.InDelta(t, 1.0/60, m.R1, 1e-9)
	assert.InDelta(t, 0.5/60, m.EmergencyH, 1e-9)
	require.Len(t, m.Strategies, 1)
	ss := m.Strategies[0]
	assert.InDelta(t, 0.25, ss.LostH, 1e-9)
	assert.InDelta(t, 1, ss.Quiet, 1e-9)
	require.Len(t, ss.Points, 3)
	for _, pt := range ss.Points {
		q := (3 + math.Log2(float64(pt.Machines)) + 0.75*0.5 + 0.25*15) / 60
		assert.InDelta(t, q, m.PerInterruptionH(ss, pt.Machines, pt.RateH), 1e-9)
		assert.InDelta(t, pt.Savings.Mean, m.SavingsAt(ss, pt.Machines, pt.RateH), 1e-9, "%d machines", pt.Machines)
		assert.InDelta(t, pt.BreakEven, m.BreakEvenPerMachine(ss, pt.Machines), 1e-6, "%d machines", pt.Machines)
	}

	dir := t.TempDir()
	require.NoError(t, analysis.WriteReport(dir, s, analysis.ReportOptions{}))
	doc, err := os.ReadFile(filepath.Join(dir, analysis.ReportFile))
	require.NoError(t, err)
	assert.Contains(t, string(doc), "## lstm-solar, 25% kills: the job as it grows")
	assert.Contains(t, string(doc), "- restart R(N) = 3.00 + 1.00·log2(N) min")
	assert.Contains(t, string(doc), "## lstm-solar, 25% kills, 4 machines")
	assert.Contains(t, string(doc), "(the last column)")
	for _, ext := range []string{"png", "svg"} {
		assert.FileExists(t, filepath.Join(dir, "scale-lstm-solar-25pct-kills."+ext))
	}
}

// Where spot stops paying: the first size whose break-even per machine-hour is below the rate;
// the break-even falls as the job grows.
func TestScaleStopsPaying(t *testing.T) {
	m := &analysis.Scale{NoNoticeShare: 0.25, Ratio: 0.4, R0: 0.05, R1: 0.01, EmergencyH: 0.01, RateH: 0.5}
	ss := &analysis.StrategyScale{Strategy: "fixed", LostH: 0.25, Quiet: 1}
	m.Strategies = []*analysis.StrategyScale{ss}
	prev := math.Inf(1)
	for n := 1; n <= 256; n *= 2 {
		be := m.BreakEvenPerMachine(ss, n)
		q := m.PerInterruptionH(ss, n, 0.5)
		assert.InDelta(t, analysis.BreakEven(0.4, 1, 1, q)/float64(n), be, 1e-9, "%d machines", n)
		assert.Less(t, be, prev)
		prev = be
	}
	const rate = 0.45
	n := m.StopsPaying(ss, rate)
	require.Greater(t, n, 1)
	assert.Less(t, m.BreakEvenPerMachine(ss, n), rate)
	assert.Greater(t, m.BreakEvenPerMachine(ss, n-1), rate)
	assert.Positive(t, m.SavingsAt(ss, n-1, rate))
	assert.Negative(t, m.SavingsAt(ss, n, rate))
	one := m.OneRestart()
	assert.InDelta(t, m.PerInterruptionH(ss, 1, rate), one.PerInterruptionH(ss, 64, rate), 1e-12, "one machine's restart at every size")
	assert.Equal(t, 0.01, m.R1, "m is unchanged")
	assert.Greater(t, one.StopsPaying(ss, rate), n, "a restart that does not grow lets spot pay longer")
	assert.Equal(t, 0, m.StopsPaying(ss, 1e-6), "at a negligible rate spot pays at every size")
	ss.Quiet = 3
	assert.Equal(t, 0.0, m.BreakEvenPerMachine(ss, 1), "three times the hours at 40% of the price never pays")
	assert.Equal(t, 1, m.StopsPaying(ss, 0.5))
}

// Adaptive's interval is Daly's for the job's time between kills, which shrinks as the job
// grows, within the strategy's bounds; the work a kill loses follows it.
func TestScaleAdaptiveInterval(t *testing.T) {
	m := &analysis.Scale{NoNoticeShare: 1, Ratio: 0.4, RateH: 1}
	ss := &analysis.StrategyScale{Strategy: "adaptive", LostH: 0.1, Quiet: 1, BlockingH: 1.0 / 3600, IntervalH: [2]float64{0, 4}}
	// Daly's interval, sqrt(2cm)(1 + sqrt(c/2m)/3 + c/18m) - c, for c = 1 s and m = 1 h / n.
	daly := func(n int) float64 {
		c, m := 1.0, 3600/float64(n)
		return (math.Sqrt(2*c*m)*(1+math.Sqrt(c/(2*m))/3+c/(18*m)) - c) / 3600
	}
	for _, n := range []int{1, 4, 64} {
		// Nothing else costs: q is the work lost, which scales with the interval.
		assert.InDelta(t, 0.1*daly(n)/daly(1), m.PerInterruptionH(ss, n, 1), 1e-6, "%d machines", n)
	}
	assert.InDelta(t, 0.5, m.PerInterruptionH(ss, 4, 1)/m.PerInterruptionH(ss, 1, 1), 0.01, "about 1/sqrt(N)")
	ss.IntervalH[0] = 1.0 / 60 // at least a minute: Daly's 84 s at 1 machine, 42 s at 4
	assert.InDelta(t, 0.1*(1.0/60)/daly(1), m.PerInterruptionH(ss, 4, 1), 1e-6, "clamped")
	fixed := &analysis.StrategyScale{Strategy: "fixed", LostH: 0.1, Quiet: 1, IntervalH: [2]float64{0.5, 0.5}}
	assert.InDelta(t, 0.1, m.PerInterruptionH(fixed, 64, 1), 1e-12, "fixed keeps its interval")
}
