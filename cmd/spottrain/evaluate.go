package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"text/tabwriter"
	"time"

	"spottrain/analysis"
	"spottrain/data/solar"
	"spottrain/train"
)

func runEvaluate(args []string, stdout io.Writer) error {
	fs := newAboutFlagSet("evaluate", "evaluate RUN_DIR [--data FILE] [--step N] [--out DIR]",
		`Scores the LSTM of RUN_DIR (its newest valid checkpoint, or that of step N) on its run's test split,
or on every window of another PV history of the same plant (--data FILE: a CSV in the run's format
or a PVGIS export), by daylight (sun zenith below 87°, measured hours only) against four baselines:
24-hour persistence, smart persistence, climatology and CLIPER. It prints the table, and writes to
DIR scores.csv (every score overall, by horizon step, UTC hour and month) and the figures days
(a clear, an overcast and a mixed day), by-hour (RMSE and bias), skill-horizon and skill-month,
as PNG and SVG.`, stdout)
	step := fs.Int64("step", 0, "evaluate the checkpoint of step `N` instead of the newest valid one")
	data := fs.String("data", "", "score on every window of this PV history `FILE` instead of the run's test split")
	outDir := fs.String("out", "", "where the CSV and figures go, `DIR` (default RUN_DIR/evaluation)")
	runDir, err := parseRunDir(fs, args, "RUN_DIR")
	if err != nil {
		return err
	}
	f, err := loadForecaster(runDir, fs.Changed("step"), *step)
	if err != nil {
		return err
	}
	defer f.net.Close()
	w, source, err := f.windows(*data)
	if err != nil {
		return err
	}
	sc, err := train.ScoreWindows(f.net, w, f.prep.Plant.CapacityKW, 512, train.Shard{}, nil)
	if err != nil {
		return err
	}
	m, err := train.ForecastMetrics(sc)
	if err != nil {
		return &train.InputError{Err: fmt.Errorf("%s: %w", source, err)}
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join(runDir, "evaluation")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := analysis.WriteScoresCSV(filepath.Join(dir, "scores.csv"), sc); err != nil {
		return err
	}
	days, err := f.pickDays(w)
	if err != nil {
		return err
	}
	if _, err := analysis.WriteForecastFigures(dir, sc, days); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s (step %d) on %s: %d windows of %d h, %d daylight hours scored; capacity %g kW\n",
		f.ck.Dir, f.ck.Manifest.Step, source, w.N, w.Horizon, int(sc.All(solar.Model).N), f.prep.Plant.CapacityKW)
	printForecastScores(stdout, m, source)
	printSkillByHorizon(stdout, sc)
	fmt.Fprintf(stdout, "wrote %s and the figures days, by-hour, skill-horizon, skill-month (.png, .svg) in %s\n", filepath.Join(dir, "scores.csv"), dir)
	return nil
}

// windows returns the windows to score: the run's test split, or every window of the file path.
func (f *forecaster) windows(path string) (*solar.Windows, string, error) {
	if path == "" {
		ds, err := train.LoadSolar(f.cfg.Data, f.cfg.Model, f.cfg.Seed)
		if err != nil {
			return nil, "", err
		}
		if !reflect.DeepEqual(ds.Prep, f.prep) {
			return nil, "", &train.InputError{Err: fmt.Errorf("%s: the data is not what %s was trained on (its preprocessing differs from %s): evaluate it with --data FILE",
				ds.Source, f.ck.Dir, train.PrepFile)}
		}
		return ds.Test, "the test split of " + ds.Source, nil
	}
	s, err := f.readHistory(path)
	if err != nil {
		return nil, "", err
	}
	w, err := f.prep.Windows(s)
	if err != nil {
		return nil, "", &train.InputError{Err: err}
	}
	return w, "every window of " + path, nil
}

// printSkillByHorizon prints the model's skill against each baseline at each horizon step, and
// their mean over the steps.
func printSkillByHorizon(stdout io.Writer, sc *solar.Scores) {
	fmt.Fprintln(stdout, "skill by horizon (hours ahead):")
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "vs\t")
	for j := range sc.Horizon {
		fmt.Fprintf(tw, "%d\t", j+1)
	}
	fmt.Fprintln(tw, "mean\t")
	for _, base := range forecastBaselines {
		fb := 1 + base.index
		fmt.Fprintf(tw, "%s\t", base.title)
		var sum float64
		for j := range sc.Horizon {
			s := sc.ByHorizon(solar.Model, j).Skill(sc.ByHorizon(fb, j))
			sum += s
			fmt.Fprintf(tw, "%+.2f\t", s)
		}
		fmt.Fprintf(tw, "%+.3f\t\n", sum/float64(sc.Horizon))
	}
	tw.Flush()
}

// pickDays returns, from the windows that start at midnight UTC (a day each), the clearest, the
// most overcast and the most variable of the middling days, as the model and CLIPER forecast them.
func (f *forecaster) pickDays(w *solar.Windows) ([]analysis.DayForecast, error) {
	type day struct {
		i         int
		k, change float64
	}
	var days []day
	for i := range w.N {
		if w.TargetStart[i].UTC().Hour() != 0 || w.Horizon < 24 {
			continue
		}
		var p, cs, change float64
		for j := range 24 {
			at := i*24 + j
			if w.Scored[at] {
				p, cs = p+w.Actual[at], cs+w.ClearSky[at]
			}
			if j > 0 && w.Scored[at] && w.Scored[at-1] {
				change += math.Abs(w.Actual[at]-w.Actual[at-1]) / f.prep.Plant.CapacityKW
			}
		}
		if cs > 0 {
			days = append(days, day{i, p / cs, change})
		}
	}
	if len(days) == 0 {
		return nil, nil
	}
	clear, overcast, mixed := days[0], days[0], day{i: -1}
	for _, d := range days {
		if d.k > clear.k {
			clear = d
		}
		if d.k < overcast.k {
			overcast = d
		}
		if d.k > 0.3 && d.k < 0.8 && (mixed.i < 0 || d.change > mixed.change) {
			mixed = d
		}
	}
	picked := []struct {
		d    day
		name string
	}{{clear, "clear"}, {overcast, "overcast"}, {mixed, "mixed"}}
	var out []analysis.DayForecast
	for _, p := range picked {
		if p.d.i < 0 {
			continue
		}
		d, err := f.day(w, p.d.i, p.name)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// day forecasts window i of w (a day from midnight UTC) for a figure.
func (f *forecaster) day(w *solar.Windows, i int, name string) (analysis.DayForecast, error) {
	size := w.Steps * w.Features
	raw := make([]float32, w.Horizon)
	x := torchWindow(w.X[i*size:(i+1)*size], w.Steps, w.Features)
	if err := f.net.Forward(x, raw); err != nil {
		return analysis.DayForecast{}, err
	}
	d := analysis.DayForecast{Title: fmt.Sprintf("%s day, %s", name, w.TargetStart[i].Format(time.DateOnly))}
	for j := range w.Horizon {
		at := i*w.Horizon + j
		d.Times = append(d.Times, w.TargetStart[i].Add(time.Duration(j)*time.Hour))
		d.Actual = append(d.Actual, w.Actual[at])
		d.Model = append(d.Model, w.ForecastKW(i, j, raw[j]))
		d.CLIPER = append(d.CLIPER, w.Baselines[solar.BaselineCLIPER][at])
		d.ClearSky = append(d.ClearSky, w.ClearSky[at])
	}
	return d, nil
}
