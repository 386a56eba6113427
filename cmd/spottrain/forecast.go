package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spottrain/analysis"
	"spottrain/checkpoint"
	"spottrain/configs"
	"spottrain/data/solar"
	"spottrain/internal/durable"
	"spottrain/torch"
	"spottrain/train"
)

func runForecast(args []string, stdout io.Writer) error {
	fs := newAboutFlagSet("forecast", "forecast RUN_DIR --history FILE [--step N] [--at TIME] [--out FILE] [--plot FILE]",
		`Forecasts the next horizon hours of the plant that the LSTM of RUN_DIR (its newest valid
checkpoint, or that of step N) was trained for, from the last lookback hours of a PV history (a CSV
in the run's format, or a PVGIS export) up to TIME. It writes CSV: timestamp (UTC, the hour's
start), forecast_kw, clearsky_kw and cliper_kw (the CLIPER baseline's forecast). The inputs are
prepared as in training, from the checkpoint's preprocessing.json.`, stdout)
	step := fs.Int64("step", 0, "forecast with the checkpoint of step `N` instead of the newest valid one")
	history := fs.String("history", "", "the PV history `FILE` to forecast from (required)")
	at := fs.String("at", "", "the first hour to forecast, `TIME` (as the CSV's timestamps: RFC 3339, or 2006-01-02 15:04 in UTC); default the hour after the history's last")
	out := fs.String("out", "", "write the forecast to `FILE` (CSV) instead of standard output")
	plot := fs.String("plot", "", "also draw the history's last days and the forecast in `FILE` (.png or .svg)")
	runDir, err := parseRunDir(fs, args, "RUN_DIR")
	if err != nil {
		return err
	}
	if *history == "" {
		return usageError{"forecast: --history FILE is required"}
	}
	if ext := filepath.Ext(*plot); *plot != "" && ext != ".png" && ext != ".svg" {
		return usageError{fmt.Sprintf("forecast: --plot %s: the figure's name must end in .png or .svg", *plot)}
	}
	var from time.Time
	if *at != "" {
		if from, err = solar.ParseTime(*at); err != nil {
			return usageError{fmt.Sprintf("forecast: --at: %v", err)}
		}
	}
	f, err := loadForecaster(runDir, fs.Changed("step"), *step)
	if err != nil {
		return err
	}
	defer f.net.Close()
	s, err := f.readHistory(*history)
	if err != nil {
		return err
	}
	q, err := f.prep.Query(s, from)
	if err != nil {
		return &train.InputError{Err: err}
	}
	raw := make([]float32, len(q.Times))
	if err := f.net.Forward(torchWindow(q.X, f.prep.Steps(), len(f.prep.Features)), raw); err != nil {
		return err
	}
	kw := q.PowerKW(raw)
	if *plot != "" {
		if err := analysis.PlotForecast(*plot, s, q, kw); err != nil {
			return err
		}
	}
	if *out == "" {
		return writeForecast(stdout, q, kw)
	}
	return durable.WriteWith(*out, 0o644, func(w io.Writer) error { return writeForecast(w, q, kw) })
}

// writeForecast writes the forecast kw of q as CSV.
func writeForecast(w io.Writer, q *solar.Query, kw []float64) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"timestamp", "forecast_kw", "clearsky_kw", "cliper_kw"})
	for j, t := range q.Times {
		cw.Write([]string{t.Format(time.RFC3339), kwString(kw[j]), kwString(q.ClearSkyKW[j]), kwString(q.CLIPERKW[j])})
	}
	cw.Flush()
	return cw.Error()
}

// kwString formats a power for CSV: enough digits to reproduce a float32 forecast.
func kwString(kw float64) string { return strconv.FormatFloat(kw, 'g', 9, 64) }

// forecaster is a trained LSTM forecaster loaded from a checkpoint, on the CPU.
type forecaster struct {
	ck   *checkpoint.Checkpoint
	net  *torch.Net
	spec train.ModelSpec
	prep *solar.Preprocessing
	cfg  configs.Config // the config the checkpoint was made under
}

// loadForecaster loads the checkpoint of step (byStep) or the newest valid one of runDir, which
// must be a forecaster's with its preprocessing.
func loadForecaster(runDir string, byStep bool, step int64) (*forecaster, error) {
	if strings.Contains(runDir, "://") {
		return nil, usageError{fmt.Sprintf("RUN_DIR must be a local run dir, not a URL (got %s)", runDir)}
	}
	rows, err := listCheckpoints(runDir)
	if err != nil {
		return nil, err
	}
	f := &forecaster{}
	if byStep {
		f.ck, err = pickStep(rows, runDir, step)
	} else {
		f.ck, err = pickNewest(rows, runDir, os.Stderr)
	}
	if err != nil {
		return nil, err
	}
	inCk := func(name string) string { return filepath.Join(f.ck.Dir, name) }
	doc, err := f.ck.ReadFile(train.SpecFile)
	if err == nil {
		f.spec, err = train.ParseModelSpec(doc)
	}
	if err != nil {
		return nil, err
	}
	if f.spec.Kind != configs.KindLSTM {
		return nil, &train.InputError{Err: fmt.Errorf("%s holds a %s, not a forecaster: forecasts need an LSTM run", f.ck.Dir, f.spec.Name())}
	}
	doc, err = f.ck.ReadFile(train.PrepFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &train.InputError{Err: fmt.Errorf("%s has no %s (written before spottrain stored the preprocessing): train the run again", f.ck.Dir, train.PrepFile)}
	}
	if err == nil {
		f.prep, err = solar.ParsePreprocessing(doc)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", inCk(train.PrepFile), err)
	}
	if doc, err = f.ck.ReadFile(train.ConfigFile); err != nil {
		return nil, err
	}
	if f.cfg, err = configs.ParseSaved(inCk(train.ConfigFile), doc); err != nil {
		return nil, err
	}
	if f.net, err = f.spec.Build(torch.CPU); err != nil {
		return nil, err
	}
	if doc, err = f.ck.ReadFile(train.ModelFile); err == nil {
		err = f.net.LoadState(doc)
	}
	if err != nil {
		f.net.Close()
		return nil, fmt.Errorf("%s: %w", inCk(train.ModelFile), err)
	}
	return f, nil
}

// readHistory reads a PV history file as the run read its data: a CSV with the columns and units
// of its config, or a PVGIS export, at the plant's site.
func (f *forecaster) readHistory(path string) (*solar.Series, error) {
	l := f.cfg.Data.LSTM
	site := f.prep.Plant.Site
	gapFill := l.MaxGapFillHours
	if gapFill == 0 {
		gapFill = -1 // the config's 0 means "fill nothing"; the reader's 0 means its default
	}
	s, err := solar.Open(path, solar.CSVOptions{
		TimeColumn: l.TimestampColumn, PowerColumn: l.PowerColumn, PowerInWatts: l.PowerUnit == "W",
		CapacityKW: f.prep.Plant.CapacityKW, Site: &site, MaxGapFillHours: gapFill,
	})
	if err != nil {
		return nil, &train.InputError{Err: err}
	}
	return s, nil
}

// torchWindow is one window of steps × features values as a batch of one.
func torchWindow(x []float32, steps, features int) torch.Host {
	return torch.Float32s(x, 1, int64(steps), int64(features))
}
