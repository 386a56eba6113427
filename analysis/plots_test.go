package analysis

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/configs"
)

var plotPrices = configs.Prices{GPU: "x", SpotPerHour: 0.4, OnDemandPerHour: 1}

// plotBaselineRun is an on-demand run of two hours: one trainer, no interruption.
func plotBaselineRun(index int) *RunMetrics {
	r := &RunMetrics{
		Name: "lstm-solar-on-demand", Index: index, Model: "lstm-solar", Strategy: "fixed", Pattern: "none",
		TrainingHash: "h", TimeScale: 60, Completed: true,
		WallS: 7200 + 60*float64(index), StartupS: 120, CheckpointS: 90,
		Steps: 300, Checkpoints: 3, Metric: "rmse_kw", MetricValue: 12.1 + 0.05*float64(index),
		Incarnations: []Span{{Incarnation: 1, Start: 0, Ready: 120, End: 7200, Lost: 7200, Ending: "done"}},
	}
	r.BilledS = r.WallS
	r.UsefulS = r.BilledS - r.StartupS - r.CheckpointS
	for s := 0; s <= 300; s += 10 {
		r.Losses = append(r.Losses, StepValue{Step: s, Value: 1 / (1 + float64(s)/50), Incarnation: 1})
	}
	for s := 100; s <= 300; s += 100 {
		r.Validations = append(r.Validations, StepValue{Step: s, Value: 14 - float64(s)/200, Incarnation: 1})
	}
	return r
}

// plotSpotRun is a spot run with a kill (work lost, steps 60 to 90 redone) and a notice, three
// trainers and two times without a VM.
func plotSpotRun(strategy, pattern string, index int) *RunMetrics {
	k := 1 + 0.1*float64(index) // repetitions differ a little
	if pattern == "bursty" {
		k += 0.3
	}
	ckpt, wasted := 120.0, 300.0
	if strategy == "adaptive" {
		ckpt, wasted = 80, 200
	}
	r := &RunMetrics{
		Name: "lstm-solar-" + strategy + "-" + pattern, Index: index, Model: "lstm-solar", Strategy: strategy,
		Pattern: pattern, NoNoticeShare: 0.25, TrainingHash: "h", TimeScale: 60, Completed: true,
		WallS: 8000 * k, DownS: 500, StartupS: 370, RestartS: 250, CheckpointS: ckpt * k, EmergencyS: 30,
		WastedS: wasted * k, Steps: 300, RedoSteps: 30, Checkpoints: 4, Notices: 1, Kills: 1,
		Metric: "rmse_kw", MetricValue: 12.2 + 0.1*k, Test: map[string]float64{"rmse_kw": 12.2 + 0.1*k},
		Incarnations: []Span{
			{Incarnation: 1, Start: 0, Ready: 120, Lost: 2400, End: 2700, Ending: "kill"},
			{Incarnation: 2, Start: 3000, Ready: 3150, Lost: 5000, End: 5000, Ending: "notice"},
			{Incarnation: 3, Start: 5200, Ready: 5300, Lost: 8000 * k, End: 8000 * k, Ending: "done"},
		},
		Interrupts: []Interrupt{{At: 2700, Step: 90, Kind: "kill"}, {At: 5000, Step: 150, Kind: "notice"}},
		Downs:      [][2]float64{{2700, 3000}, {5000, 5200}},
	}
	r.BilledS = r.WallS - r.DownS
	r.UsefulS = r.BilledS - r.StartupS - r.CheckpointS - r.EmergencyS - r.WastedS
	for _, seg := range []struct{ inc, from, to int }{{1, 0, 90}, {2, 60, 150}, {3, 150, 300}} {
		for s := seg.from; s <= seg.to; s += 10 {
			r.Losses = append(r.Losses, StepValue{Step: s, Value: (1.2 - 0.05*float64(seg.inc)) / (1 + float64(s)/50), Incarnation: seg.inc})
		}
	}
	r.Validations = []StepValue{{50, 13.9, 1}, {100, 13.5, 2}, {200, 13, 3}, {300, 12.4, 3}}
	return r
}

// plotRuns are the runs of a small study: 2 baseline runs, and 2 runs of each of 2 strategies
// and 2 patterns.
func plotRuns(baseline bool) []*RunMetrics {
	var runs []*RunMetrics
	if baseline {
		runs = append(runs, plotBaselineRun(0), plotBaselineRun(1))
	}
	for _, st := range []string{"fixed", "adaptive"} {
		for _, pat := range []string{"regular", "bursty"} {
			runs = append(runs, plotSpotRun(st, pat, 0), plotSpotRun(st, pat, 1))
		}
	}
	return runs
}

var safeName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// checkPlotFiles asserts that each figure was written as a PNG of more than one color and an
// SVG, with a safe name, a title and a caption.
func checkPlotFiles(t *testing.T, dir string, figs []Figure) {
	t.Helper()
	for _, f := range figs {
		assert.Regexp(t, safeName, f.Name)
		assert.NotEmpty(t, f.Title, f.Name)
		assert.NotEmpty(t, f.Caption, f.Name)
		assert.True(t, strings.HasSuffix(f.Caption, "."), f.Caption)

		file, err := os.Open(filepath.Join(dir, f.Name+".png"))
		require.NoError(t, err)
		img, err := png.Decode(file)
		file.Close()
		require.NoError(t, err, f.Name)
		b := img.Bounds()
		assert.Greater(t, b.Dx(), 100, f.Name)
		assert.Greater(t, b.Dy(), 100, f.Name)
		assert.True(t, func() bool {
			r0, g0, b0, a0 := img.At(b.Min.X, b.Min.Y).RGBA()
			for y := b.Min.Y; y < b.Max.Y; y++ {
				for x := b.Min.X; x < b.Max.X; x++ {
					if r, g, bl, a := img.At(x, y).RGBA(); r != r0 || g != g0 || bl != b0 || a != a0 {
						return true
					}
				}
			}
			return false
		}(), "%s.png has a single color", f.Name)

		svg, err := os.ReadFile(filepath.Join(dir, f.Name+".svg"))
		require.NoError(t, err)
		assert.Contains(t, string(svg), "<svg", f.Name)
		assert.Greater(t, len(svg), 1024, f.Name)
	}
}

func figureNames(figs []Figure) []string {
	var names []string
	for _, f := range figs {
		names = append(names, f.Name)
	}
	return names
}

func TestWritePlots(t *testing.T) {
	s := NewStudy(priced(plotRuns(true)))
	dir := t.TempDir()
	figs, err := WritePlots(dir, s)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"timeline-lstm-solar-25pct-kills-regular",
		"timeline-lstm-solar-25pct-kills-bursty",
		"wasted-lstm-solar-25pct-kills",
		"checkpoint-lstm-solar-25pct-kills",
		"cost-lstm-solar-25pct-kills",
		"savings-lstm-solar-25pct-kills",
		"accuracy-lstm-solar-25pct-kills",
		"progress-lstm-solar-fixed-regular-25pct-kills",
		"progress-lstm-solar-fixed-bursty-25pct-kills",
		"progress-lstm-solar-adaptive-regular-25pct-kills",
		"progress-lstm-solar-adaptive-bursty-25pct-kills",
	}, figureNames(figs))
	for _, f := range figs {
		assert.Equal(t, "lstm-solar|25% kills", f.Section, f.Name)
		assert.Equal(t, strings.HasPrefix(f.Name, "progress-"), f.Detail, f.Name)
	}
	checkPlotFiles(t, dir, figs)

	// Nothing but the figures' files.
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2*len(figs))
}

func TestWritePlotsWithoutBaseline(t *testing.T) {
	s := NewStudy(priced(plotRuns(false)))
	dir := t.TempDir()
	figs, err := WritePlots(dir, s)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"timeline-lstm-solar-25pct-kills-regular",
		"timeline-lstm-solar-25pct-kills-bursty",
		"wasted-lstm-solar-25pct-kills",
		"checkpoint-lstm-solar-25pct-kills",
		"accuracy-lstm-solar-25pct-kills",
		"progress-lstm-solar-fixed-regular-25pct-kills",
		"progress-lstm-solar-fixed-bursty-25pct-kills",
		"progress-lstm-solar-adaptive-regular-25pct-kills",
		"progress-lstm-solar-adaptive-bursty-25pct-kills",
	}, figureNames(figs))
	checkPlotFiles(t, dir, figs)
	for _, prefix := range []string{"cost-", "savings-"} {
		matches, err := filepath.Glob(filepath.Join(dir, prefix+"*"))
		require.NoError(t, err)
		assert.Empty(t, matches)
	}
}

// Odd names make safe file names, and NaN or infinite values neither fail nor panic.
func TestWritePlotsOddInput(t *testing.T) {
	runs := plotRuns(true)
	for _, r := range runs {
		r.Model = "LSTM_Solar v2"
		r.Name = strings.ToUpper(r.Name) + " (1h)/x"
		if !r.Baseline() {
			r.NoNoticeShare = 1
		}
	}
	bad := runs[2] // a spot run
	bad.MetricValue = math.NaN()
	bad.WastedS = math.Inf(1)
	bad.Losses = append(bad.Losses, StepValue{Step: 310, Value: math.NaN(), Incarnation: 3})
	bad.Incarnations = append(bad.Incarnations, Span{Incarnation: 4, Start: math.NaN(), Ready: math.Inf(1), End: 9000, Lost: 9000})
	runs[4].Losses = nil // fixed, bursty: its progress has the validation panel only
	s := NewStudy(priced(runs))
	dir := t.TempDir()
	figs, err := WritePlots(dir, s)
	require.NoError(t, err)
	require.NotEmpty(t, figs)
	assert.Equal(t, "timeline-lstm-solar-v2-kills-only-regular", figs[0].Name)
	assert.Contains(t, figureNames(figs), "progress-lstm-solar-fixed-regular-1h-x-kills-only")
	assert.Contains(t, figureNames(figs), "progress-lstm-solar-fixed-bursty-1h-x-kills-only")
	checkPlotFiles(t, dir, figs)

	// A group without runs has nothing to draw.
	s.Groups = append(s.Groups, &Group{Name: "empty", Model: "other", Strategy: "fixed", Pattern: "regular"})
	again, err := WritePlots(t.TempDir(), s)
	require.NoError(t, err)
	assert.Equal(t, figureNames(figs), figureNames(again))
}

func TestPlotSlug(t *testing.T) {
	for in, want := range map[string]string{
		"25% kills":       "25pct-kills",
		"kills only":      "kills-only",
		"LSTM_Solar v2":   "lstm-solar-v2",
		"--a//b--":        "a-b",
		"résumé":          "r-sum",
		"":                "figure",
		"resnet50-cifar1": "resnet50-cifar1",
	} {
		assert.Equal(t, want, slug(in), in)
		assert.Regexp(t, safeName, slug(in), in)
	}
	assert.Equal(t, "wasted-lstm-solar-25pct-kills", slug("wasted", "lstm-solar", "25% kills"))
}

// priced gives every run plotPrices.
func priced(runs []*RunMetrics) []*RunMetrics {
	for _, r := range runs {
		r.Prices = plotPrices
	}
	return runs
}
