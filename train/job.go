package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/torch"
)

// Summary is what a finished (or stopped) job reports.
type Summary struct {
	Name    string
	Device  torch.Device
	Threads int
	Params  int64
	Samples [3]int // train, val, test windows
	Result  *Result
	Test    Metrics       // scores on the test split, after training
	Wall    time.Duration // of this process
	// ComputeSeconds is the training time of the whole run, all incarnations together.
	ComputeSeconds float64
	RunDir         string
	ConfigSHA      string
}

// Options are a job's settings that are not part of its config.
type Options struct {
	Log      io.Writer     // log lines and progress
	Terminal bool          // Log is a terminal
	Stop     <-chan Notice // preemption notices (signals, cloud metadata); nil: none
	Force    bool          // resume a run dir whose checkpoints were made with another config
	// FS is the file system checkpoints are written through; nil: the operating system's.
	FS checkpoint.FS
}

// Run trains the job that cfg describes in its run dir, resuming from the newest valid checkpoint
// there if any: it locks the run dir, prepares libtorch (seed, threads, determinism, device),
// loads the data, builds the model and the optimizer, restores their state and the RNG's, runs
// the loop with periodic checkpoints, and at the end writes a final checkpoint, scores the test
// split and writes metrics.json. Every step of that goes to the run's events.jsonl. On a notice
// from opt.Stop it returns a *PreemptedError after an emergency checkpoint; ExitCode maps its
// errors to exit statuses.
func Run(ctx context.Context, cfg configs.Config, opt Options) (sum *Summary, err error) {
	runtime.LockOSThread() // all libtorch calls from one thread: see Loop.Run
	defer runtime.UnlockOSThread()
	start := time.Now()
	log := opt.Log
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

	work, err := newWorkload(cfg, log)
	if err != nil {
		return nil, &InputError{err}
	}
	defer work.Close()
	spec := work.Spec()
	net, err := spec.Build(dev)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	tc := cfg.Train
	if err := net.SetOptions(torch.NetOptions{LabelSmoothing: tc.LabelSmoothing, BF16: tc.Precision == "bf16", ChannelsLast: tc.ChannelsLast}); err != nil {
		return nil, &InputError{err}
	}
	torch.SetCudnnBenchmark(tc.CudnnBenchmark)
	oc := cfg.Optimizer
	optim, err := torch.NewOptimizer(net, torch.OptimizerConfig{
		Name: oc.Name, LR: oc.LR, WeightDecay: oc.WeightDecay, Beta1: oc.Betas[0], Beta2: oc.Betas[1],
		Eps: oc.Eps, Momentum: oc.Momentum, Nesterov: oc.Nesterov,
	})
	if err != nil {
		return nil, err
	}
	defer optim.Close()

	lc := Config{
		Epochs: cfg.Train.Epochs, BatchSize: cfg.Train.BatchSize, MaxSteps: cfg.Train.MaxSteps,
		LogEvery: cfg.Train.LogEvery, GradClip: cfg.Train.GradClip, Seed: cfg.Seed,
	}
	sc := cfg.Schedule
	lc.Schedule = Schedule{
		Name: sc.Name, BaseLR: oc.LR, Warmup: sc.WarmupSteps, StepSize: sc.StepSize, Gamma: sc.Gamma,
		MinLR: sc.MinLR, Total: TotalSteps(work.TrainSize(), lc),
	}
	if err := lc.Schedule.Validate(); err != nil {
		return nil, err
	}

	strategy, metric, mode, err := strategyFor(cfg, work.MetricNames())
	if err != nil {
		return nil, err
	}
	storeOpt := checkpoint.Options{Keep: cfg.Checkpoint.Keep, FS: opt.FS}
	if strategy.Name() == checkpoint.StrategyMilestone {
		storeOpt.BestMetric, storeOpt.BestMode = metric, mode // the best checkpoint is kept too
	}

	// Inputs are checked above; only now is the run dir created (or locked, if it exists).
	store, err := checkpoint.Open(cfg.RunDir, storeOpt)
	if err != nil {
		return sum, err
	}
	defer store.Close()
	latest, invalid, err := store.Latest()
	if err != nil && !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return sum, err
	}
	var (
		remote *checkpoint.Remote
		pulled *pull
	)
	if url := cfg.RemoteURL(); url != "" {
		if remote, err = checkpoint.OpenRemote(ctx, url); err != nil {
			return sum, err
		}
		defer remote.Close()
		// A fresh VM has an empty run dir: the run goes on from its copy in object storage.
		if pulled, err = pullRemote(ctx, remote, store, latest, cfg.RunDir); err != nil {
			return sum, err
		}
		if pulled.ck != nil {
			latest = pulled.ck
		}
		invalid = append(invalid, pulled.invalid...)
	}
	ev, err := events.Open(cfg.RunDir)
	if err != nil {
		return sum, err
	}
	defer ev.Close()
	var mirror *checkpoint.Mirror
	uploadDeadline := time.Time{} // set by the flush of the mirror, for the last copy of the log
	defer func() {
		// After the exit event: the remote copy of the log gets it too.
		if mirror != nil {
			uctx, cancel := contextUntil(context.WithoutCancel(ctx), uploadDeadline)
			defer cancel()
			if err := remote.PutFile(uctx, filepath.Join(cfg.RunDir, events.FileName)); err != nil {
				fmt.Fprintf(log, "warning: %v\n", err)
			}
		}
	}()
	defer func() {
		// step is required: a process that stops before the loop (a refused config, a failed
		// restore) has done no step.
		exit := events.Exit{Code: ExitCode(err), Reason: "done", Step: 0}
		if err != nil {
			exit.Reason = err.Error()
		}
		if sum != nil && sum.Result != nil {
			exit.Step = sum.Result.Steps
		}
		var pe *PreemptedError
		if errors.As(err, &pe) {
			ms := time.Since(pe.Notice.At).Milliseconds()
			exit.Signal, exit.SignalToExitMS = pe.Notice.Signal.String(), &ms
		}
		ev.Emit(exit)
	}()

	// The saved config names the data file by its absolute path, so it loads again from anywhere.
	saved := cfg
	if saved.Data.Path != "" {
		if saved.Data.Path, err = filepath.Abs(saved.Data.Path); err != nil {
			return nil, err
		}
	}
	sum = &Summary{
		Name: cfg.Name, Device: dev, Threads: torch.NumThreads(), Params: net.NumParams(),
		Samples: work.Samples(), RunDir: cfg.RunDir, ConfigSHA: saved.Hash(),
	}
	ev.Emit(events.RunStart{ConfigHash: sum.ConfigSHA, TrainingHash: saved.TrainingHash(),
		Device: string(dev), PID: os.Getpid(), Libtorch: torch.Version(), TotalSteps: lc.Schedule.Total})

	// Resume from the newest valid checkpoint, if there is one.
	configYAML, err := saved.YAML()
	if err != nil {
		return sum, err
	}
	ck := &checkpointer{
		store: store, events: ev, net: net, opt: optim, spec: spec, strategy: strategy, metric: metric, log: log,
		config: configYAML,
		manifest: checkpoint.Manifest{
			ConfigHash: sum.ConfigSHA, DataSeed: cfg.Seed, Libtorch: torch.Version(), Device: string(dev),
		},
	}
	var from Position
	for _, inv := range invalid {
		fmt.Fprintf(log, "warning: skipped invalid checkpoint %s: %s\n", inv.Dir, inv.Reason)
		ev.Emit(events.CheckpointInvalid{Dir: inv.Dir, Reason: inv.Reason})
	}
	if pulled != nil && pulled.ck != nil {
		fmt.Fprintf(log, "downloaded step %d from %s (%.1f MB in %.1f s)\n", pulled.ck.Manifest.Step, remote.URL(),
			float64(pulled.bytes)/1e6, pulled.took.Seconds())
		ev.Emit(events.CheckpointDownload{Step: pulled.ck.Manifest.Step, URL: remote.URL(),
			Bytes: pulled.bytes, DownloadMS: pulled.took.Seconds() * 1000})
	}
	if remote != nil {
		mirror = ck.startMirror(remote, storeOpt, cfg.RunDir, latest, pulled.ck == nil)
		defer mirror.Close()
		defer func() { uploadDeadline, err = ck.finishUploads(ctx, err, cfg.Checkpoint.RemoteGrace, sum) }()
	}
	if latest == nil {
		ck.manifest.RunID = newRunID()
	} else {
		m := latest.Manifest
		changes, err := checkResume(saved, sum.ConfigSHA, latest, opt.Force)
		if err != nil {
			return sum, err
		}
		for _, c := range changes {
			fmt.Fprintf(log, "config changed since the checkpoint: %s\n", c)
		}
		if err := restore(latest, net, optim); err != nil {
			return sum, err
		}
		from = Position{Epoch: m.Epoch, Batch: m.Batch, Step: int(m.Step), LossSum: m.Loss * float64(m.Batch)}
		ck.manifest.RunID, ck.computeBefore, ck.lastStep = m.RunID, m.ComputeSeconds, int(m.Step)
		fmt.Fprintf(log, "resumed from step %d, epoch %d, batch %d (%s)\n", from.Step, from.Epoch+1, from.Batch, latest.Dir)
		if from.Step >= lc.Schedule.Total {
			fmt.Fprintf(log, "the run is complete: evaluating its final checkpoint (another run_dir trains anew)\n")
		}
		ev.Emit(events.Resume{Step: from.Step, Epoch: from.Epoch, Batch: from.Batch, Dir: latest.Dir})
	}
	if err := os.WriteFile(filepath.Join(cfg.RunDir, ConfigFile), configYAML, 0o644); err != nil {
		return sum, err
	}
	fmt.Fprintf(log, "%s: %s on %s (%d threads), libtorch %s | %s %d params | %s | %d steps\n",
		cfg.Name, work.Describe(), dev, sum.Threads, torch.Version(), spec.Name(), sum.Params, work.Sizes(), lc.Schedule.Total)

	// The strategy learns the run's history: its interruptions, and the best metric so far.
	past, err := pastInterruptions(cfg.RunDir, ev.Incarnation())
	if err != nil {
		return sum, err
	}
	for _, in := range past {
		strategy.Interrupted(in.uptime, in.notice)
	}
	if seeder, ok := strategy.(checkpoint.BestSeeder); ok {
		all, _, err := checkpoint.List(cfg.RunDir)
		if err != nil {
			return sum, err
		}
		for _, c := range all {
			if v, ok := c.Manifest.Metrics[metric]; ok {
				seeder.SeedBest(v)
			}
		}
	}
	ck.started = time.Now()
	strategy.Start(ck.started)
	loop := &Loop{Net: net, Opt: optim, Task: work, Config: lc, Start: from, Checkpoints: ck, Events: ev, Stop: opt.Stop, Log: log, Terminal: opt.Terminal}
	sum.Result, err = loop.Run(ctx)
	ck.wait()
	sum.Wall = time.Since(start)
	if err != nil {
		return sum, err
	}
	if ck.lastStep != sum.Result.Steps {
		if err := ck.Save(sum.Result.End, codes.Final, sum.Result.lastMetrics()); err != nil {
			return sum, err
		}
	}
	sum.ComputeSeconds = ck.computeSeconds()
	if sum.Test, err = work.Test(net); err != nil {
		return sum, fmt.Errorf("score test split: %w", err)
	}
	return sum, writeMetrics(cfg.RunDir, sum)
}

// writeMetrics writes metrics.json: the job's test scores, and the validation scores of every epoch
// as the run's events recorded them, across incarnations (an epoch evaluated twice, after a kill
// without notice, counts once: its last evaluation).
func writeMetrics(dir string, s *Summary) error {
	type epoch struct {
		Epoch     int     `json:"epoch"`
		Step      int     `json:"step"`
		TrainLoss float64 `json:"train_loss"`
		Val       Metrics `json:"val"`
	}
	out := struct {
		Name           string  `json:"name"`
		Device         string  `json:"device"`
		Params         int64   `json:"params"`
		Steps          int     `json:"steps"`
		ComputeSeconds float64 `json:"compute_seconds"`
		ConfigSHA      string  `json:"config_sha256"`
		Epochs         []epoch `json:"epochs"`
		Test           Metrics `json:"test"`
	}{Name: s.Name, Device: string(s.Device), Params: s.Params, Steps: s.Result.Steps, ComputeSeconds: s.ComputeSeconds, ConfigSHA: s.ConfigSHA, Test: s.Test}
	evs, err := events.Read(filepath.Join(dir, events.FileName))
	if err != nil {
		return err
	}
	for _, e := range evs {
		p, ok := e.Payload.(events.EpochEnd)
		if !ok {
			continue
		}
		ep := epoch{Epoch: p.Epoch + 1, Step: p.Step, TrainLoss: p.TrainLoss, Val: Metrics{}}
		maps.Copy(ep.Val, p.Metrics)
		for n := len(out.Epochs); n > 0 && out.Epochs[n-1].Epoch >= ep.Epoch; n-- {
			out.Epochs = out.Epochs[:n-1] // a redone epoch replaces the earlier evaluations
		}
		out.Epochs = append(out.Epochs, ep)
	}
	doc, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "metrics.json"), append(doc, '\n'), 0o644)
}
