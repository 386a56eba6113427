package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"spottrain/configs"
	"spottrain/data/solar"
	"spottrain/torch"
)

// Summary is what a finished (or stopped) job reports.
type Summary struct {
	Name      string
	Device    torch.Device
	Threads   int
	Params    int64
	Samples   [3]int // train, val, test windows
	Result    *Result
	Test      Metrics // scores on the test split, after training
	Wall      time.Duration
	RunDir    string
	ConfigSHA string
}

// Run trains the job that cfg describes: it prepares libtorch (seed, threads, determinism,
// device), loads the data, builds the model and the optimizer, runs the loop, scores the test
// split, and writes config.yaml and metrics.json into cfg.RunDir.
func Run(ctx context.Context, cfg configs.Config, log io.Writer, terminal bool) (*Summary, error) {
	start := time.Now()
	dev, err := torch.ParseDevice(cfg.Device)
	if err != nil {
		return nil, &InputError{err}
	}
	threads := cfg.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	torch.SetNumThreads(threads)
	if err := torch.SetDeterministic(cfg.Deterministic); err != nil {
		return nil, err
	}
	torch.ManualSeed(cfg.Seed)

	ds, err := LoadSolar(cfg.Data, cfg.Seed)
	if err != nil {
		return nil, &InputError{err}
	}
	for _, r := range ds.Repairs {
		fmt.Fprintf(log, "data: repaired %s\n", r)
	}
	task := &SolarTask{Data: ds.Dataset, EvalBatch: cfg.Train.EvalBatchSize}

	net, err := torch.NewLSTM(torch.LSTMConfig{
		Inputs: ds.Train.Features, Hidden: cfg.Model.HiddenSize, Layers: cfg.Model.NumLayers,
		Dropout: cfg.Model.Dropout, Horizon: ds.Train.Horizon,
	}, dev)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	oc := cfg.Optimizer
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{
		Name: oc.Name, LR: oc.LR, WeightDecay: oc.WeightDecay, Beta1: oc.Betas[0], Beta2: oc.Betas[1],
		Eps: oc.Eps, Momentum: oc.Momentum, Nesterov: oc.Nesterov,
	})
	if err != nil {
		return nil, err
	}
	defer opt.Close()

	lc := Config{
		Epochs: cfg.Train.Epochs, BatchSize: cfg.Train.BatchSize, MaxSteps: cfg.Train.MaxSteps,
		LogEvery: cfg.Train.LogEvery, GradClip: cfg.Train.GradClip, Seed: cfg.Seed,
	}
	sc := cfg.Schedule
	lc.Schedule = Schedule{
		Name: sc.Name, BaseLR: oc.LR, Warmup: sc.WarmupSteps, StepSize: sc.StepSize, Gamma: sc.Gamma,
		MinLR: sc.MinLR, Total: TotalSteps(task.TrainSize(), lc),
	}
	if err := lc.Schedule.Validate(); err != nil {
		return nil, err
	}

	// config.yaml holds data.path absolute: loaded back, a relative one would resolve against the
	// run dir (a config file's directory), not against the directory it was relative to.
	saved := cfg
	if saved.Data.Path != "" {
		if saved.Data.Path, err = filepath.Abs(saved.Data.Path); err != nil {
			return nil, err
		}
	}
	sum := &Summary{
		Name: cfg.Name, Device: dev, Threads: torch.NumThreads(), Params: net.NumParams(),
		Samples: [3]int{ds.Train.N, ds.Val.N, ds.Test.N}, RunDir: cfg.RunDir, ConfigSHA: saved.Hash(),
	}
	if err := writeConfig(saved); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "%s: %s on %s (%d threads), libtorch %s | LSTM %d params | windows train %d, val %d, test %d | %d steps\n",
		cfg.Name, ds.Source, dev, sum.Threads, torch.Version(), sum.Params, ds.Train.N, ds.Val.N, ds.Test.N, lc.Schedule.Total)

	loop := &Loop{Net: net, Opt: opt, Task: task, Config: lc, Log: log, Terminal: terminal}
	sum.Result, err = loop.Run(ctx)
	sum.Wall = time.Since(start)
	if err != nil {
		return sum, err
	}
	if sum.Test, err = task.Score(net, ds.Test); err != nil {
		return sum, fmt.Errorf("score test split: %w", err)
	}
	return sum, writeMetrics(cfg.RunDir, sum)
}

// SolarData is a solar dataset with where it came from.
type SolarData struct {
	*solar.Dataset
	Source  string         // "synthetic" or the file read
	Repairs []solar.Repair // repairs made while reading the file
}

// LoadSolar generates or reads the PV series that dc names and cuts it into windows.
func LoadSolar(dc configs.DataConfig, seed uint64) (*SolarData, error) {
	var s *solar.Series
	var err error
	switch dc.Source {
	case "synthetic":
		s, err = solar.Generate(solar.SynthConfig{
			Latitude: dc.Latitude, Longitude: dc.Longitude, Start: dc.Start, Days: dc.Days,
			CapacityKW: dc.CapacityKW, CloudPersistence: dc.CloudPersistence, Noise: dc.Noise, Seed: seed,
		})
	case "csv":
		gapFill := dc.MaxGapFillHours
		if gapFill == 0 {
			gapFill = -1 // the config's 0 means "fill nothing"; the reader's 0 means its default
		}
		s, err = solar.ReadCSV(dc.Path, solar.CSVOptions{
			TimeColumn: dc.TimestampColumn, PowerColumn: dc.PowerColumn, PowerInWatts: dc.PowerUnit == "W",
			CapacityKW: dc.CapacityKW, Site: &solar.Site{Latitude: dc.Latitude, Longitude: dc.Longitude},
			MaxGapFillHours: gapFill,
		})
	case "pvgis":
		s, err = solar.ReadPVGIS(dc.Path)
	default:
		err = fmt.Errorf("unknown data source %q", dc.Source)
	}
	if err != nil {
		return nil, err
	}
	ds, err := solar.MakeDataset(s, solar.WindowConfig{
		Lookback: dc.LookbackHours, Horizon: dc.HorizonHours, TrainFrac: dc.TrainFrac, ValFrac: dc.ValFrac,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Source, err)
	}
	return &SolarData{Dataset: ds, Source: s.Source, Repairs: s.Repairs}, nil
}

func writeConfig(cfg configs.Config) error {
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return fmt.Errorf("create run dir: %w", err)
	}
	doc, err := cfg.YAML()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.RunDir, "config.yaml"), doc, 0o644)
}

func writeMetrics(dir string, s *Summary) error {
	type epoch struct {
		Epoch     int     `json:"epoch"`
		TrainLoss float64 `json:"train_loss"`
		Val       Metrics `json:"val"`
		Seconds   float64 `json:"seconds"`
	}
	out := struct {
		Name      string  `json:"name"`
		Device    string  `json:"device"`
		Params    int64   `json:"params"`
		Steps     int     `json:"steps"`
		Seconds   float64 `json:"seconds"`
		ConfigSHA string  `json:"config_sha256"`
		Epochs    []epoch `json:"epochs"`
		Test      Metrics `json:"test"`
	}{Name: s.Name, Device: string(s.Device), Params: s.Params, Steps: s.Result.Steps, Seconds: s.Wall.Seconds(), ConfigSHA: s.ConfigSHA, Test: s.Test}
	for _, e := range s.Result.Epochs {
		out.Epochs = append(out.Epochs, epoch{e.Epoch + 1, e.TrainLoss, e.Val, e.Duration.Seconds()})
	}
	doc, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "metrics.json"), append(doc, '\n'), 0o644)
}
