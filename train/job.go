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
	"spottrain/distributed"
	"spottrain/events"
	"spottrain/internal/durable"
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
	// Member, if set, makes this process a rank of a data-parallel group (see group.go): the
	// launcher's, torchrun's or Kubeflow's variables say which. nil: a process alone.
	Member *distributed.Member
	// Memory is the memory in bytes that generated data may take; 0: what the machine has
	// available. Data that would not fit is refused before it is made, naming the key that sizes it.
	Memory uint64
	// Pause, if set, is called at these points of the job: "data" (once the data is loaded),
	// "restore" (once the state is restored), "final-save" (before the final checkpoint),
	// "final-eval" (before each batch of the test scoring), and those of Loop.Pause. Only the
	// CLI's test hooks set it, to hold a phase open for a signal.
	Pause func(point string)
	// Samples is Loop.Samples: only the CLI's test hooks set it.
	Samples func(step, rank, world int, idx []int)
}

// Run trains the job that cfg describes in its run dir, resuming from the newest valid checkpoint
// there (or in the remote copy) if any. It goes through these phases, each a method of job:
//
//   - prepare: libtorch (seed, threads, determinism, device), the data, the model, the optimizer,
//     the schedule and the checkpoint strategy. Every input is checked here, before the run dir is
//     touched: a bad one leaves nothing behind.
//   - open: the run dir (created or locked), its newest valid checkpoint, the remote copy (a newer
//     checkpoint there is downloaded), the event log; then the run_start event.
//   - restore: the model, optimizer and RNG state and the position of that checkpoint, once the
//     config it was made under is found compatible; the run's config.yaml; the strategy's history.
//   - train: the loop, with periodic checkpoints, until the end or a notice (emergency checkpoint).
//   - complete (after a whole training only): the final checkpoint, the test scores, metrics.json.
//   - end (once the log is open, whatever happened): the uploads still in flight, the exit event,
//     the last upload of the log, in this order.
//
// A notice from opt.Stop ends the job with a *PreemptedError (ExitCode 75) and nothing lost, at
// the first of these points after it comes: the start of prepare, the end of prepare, open and
// restore (nothing new to save: the run dir is left as it was, plus the log's events), the end of
// a training step or of an evaluation batch (the emergency checkpoint is durable first; an
// evaluation cut short is done again on resume), the end of the final checkpoint, a batch of the
// test scoring. So the time from a notice to the exit is bounded by the longest of: a phase
// before training (data loading is the long one), a step plus a checkpoint, an evaluation batch,
// the final checkpoint, then end's uploads (checkpoint.remote_grace at most). A notice after the
// test scores is ignored: the job is done and exits 0. ExitCode maps Run's errors to exit
// statuses.
func Run(ctx context.Context, cfg configs.Config, opt Options) (*Summary, error) {
	runtime.LockOSThread() // all libtorch calls from one thread: see Loop.Run
	defer runtime.UnlockOSThread()
	j := &job{cfg: cfg, opt: opt, log: opt.Log, started: time.Now()}
	defer j.release()
	// A rank of a group that stopped before joining it would fail the others' rendezvous: its
	// notice waits for the group's first decision instead.
	if j.opt.Member == nil {
		if err := j.stopped("startup", -1); err != nil {
			return nil, err
		}
	}
	if err := j.prepare(); err != nil {
		return nil, err
	}
	if !j.group.leader() {
		return j.follow(ctx)
	}
	if err := j.stopped("prepare", -1); err != nil {
		return nil, j.announce(err)
	}
	if err := j.open(ctx); err != nil {
		return j.sum, j.announce(err)
	}
	err := j.stopped("open", j.latestStep())
	if err == nil {
		err = j.restore()
	}
	if err == nil {
		err = j.stopped("restore", j.from.Step)
	}
	err = j.announce(err)
	if err == nil {
		err = j.trainAll(ctx)
	}
	if err == nil {
		err = j.complete()
	}
	return j.sum, j.end(ctx, err)
}

// notice returns a pending notice of opt.Stop, without waiting; nil if none.
func (j *job) notice() *Notice {
	select {
	case n := <-j.opt.Stop:
		return &n
	default:
		return nil
	}
}

// stopped returns the *PreemptedError of a notice that came before the end of phase, with every
// step done up to step saved (-1: the run dir is not open yet); nil if none came.
func (j *job) stopped(phase string, step int) error {
	if n := j.notice(); n != nil {
		return j.stop(n, phase, step)
	}
	return nil
}

// stop ends the job on notice n during phase, with every step up to step saved: it reports the
// notice (in the log, and in the event log once it is open) and returns the *PreemptedError.
func (j *job) stop(n *Notice, phase string, step int) error {
	fmt.Fprintf(j.log, "%s received during %s: stopping, with nothing new to save\n", n.Signal, phase)
	if j.events != nil {
		j.events.Emit(events.SignalReceived{Signal: n.Signal.String(), Step: max(step, 0),
			WaitMS: time.Since(n.At).Seconds() * 1000})
	}
	return &PreemptedError{Notice: *n, Step: step, Phase: phase}
}

// latestStep is the step of the checkpoint the job resumes from; 0 when it starts afresh.
func (j *job) latestStep() int {
	if j.latest == nil {
		return 0
	}
	return int(j.latest.Manifest.Step)
}

func (j *job) pause(point string) {
	if j.opt.Pause != nil {
		j.opt.Pause(point)
	}
}

// A job is one training process's run of a config. Each phase of Run fills in what the next
// ones use.
type job struct {
	cfg     configs.Config
	opt     Options
	log     io.Writer
	started time.Time
	group   *group   // nil: a process alone
	elastic *elastic // nil: a group that a lost machine stops (or a process alone)

	// prepare
	dev       torch.Device
	work      workload
	net       *torch.Net
	optim     *torch.Optimizer
	loop      Config
	strategy  checkpoint.Strategy
	metric    string // of the validation metrics, the one the strategy and the retention watch
	storeOpt  checkpoint.Options
	saved     configs.Config // the config as the run dir records it
	savedYAML []byte         // and as its config.yaml and every checkpoint hold it

	// open
	store  *checkpoint.Store
	remote *checkpoint.Remote // nil: no checkpoint.remote
	events *events.Log
	latest *checkpoint.Checkpoint // the newest valid checkpoint, local or downloaded; nil: none
	sum    *Summary
	ck     *checkpointer

	// restore
	from    Position
	resumed *checkpoint.Checkpoint // the checkpoint restored; nil: a fresh start
}

// prepare sets libtorch up and builds what the run trains, from the config alone.
func (j *job) prepare() error {
	cfg := j.cfg
	dev, err := torch.ParseDevice(cfg.Device)
	if err == nil {
		dev, err = rankDevice(dev, j.opt.Member)
	}
	if err != nil {
		return &InputError{err}
	}
	j.dev = dev
	if m := j.opt.Member; m != nil && cfg.Train.BatchSize%m.World != 0 {
		return &InputError{fmt.Errorf("train.batch_size: %d is not divisible by the group's %d processes (WORLD_SIZE): each takes an equal share of every batch", cfg.Train.BatchSize, m.World)}
	}
	torch.SetNumThreads(threadsPerRank(cfg.Threads, j.opt.Member))
	if err := torch.SetDeterministic(cfg.Deterministic); err != nil {
		return err
	}
	torch.ManualSeed(cfg.Seed)
	local := 1
	if m := j.opt.Member; m != nil {
		local = max(m.LocalWorld, 1)
	}
	if err := checkMemory(cfg, j.opt.Memory, local); err != nil {
		return err
	}
	if j.opt.Member == nil || j.opt.Member.Rank == 0 { // the run dir and its remote copy are rank 0's
		if err := checkRegion(context.Background(), cfg.Checkpoint.Remote); err != nil {
			return err
		}
		if err := checkRunDirOwner(cfg.RunDir); err != nil {
			return err
		}
	}
	work, err := newWorkload(cfg, j.log)
	if err != nil {
		return &InputError{err}
	}
	j.work = work
	j.pause("data")
	if err := j.buildModel(); err != nil {
		return err
	}
	if m := j.opt.Member; m != nil {
		if err := j.enter(m); err != nil {
			return err
		}
	}
	j.loop = loopConfig(cfg, j.work.TrainSize())
	if err := j.loop.Schedule.Validate(); err != nil {
		return err
	}
	var mode string
	if j.strategy, j.metric, mode, err = strategyFor(cfg, j.work.Metrics()); err != nil {
		return err
	}
	j.storeOpt = checkpoint.Options{Keep: cfg.Checkpoint.Keep, FS: j.opt.FS}
	if j.strategy.Name() == checkpoint.StrategyMilestone {
		j.storeOpt.BestMetric, j.storeOpt.BestMode = j.metric, mode // the best checkpoint is kept too
	}
	j.saved, j.savedYAML, err = savedConfig(cfg)
	return err
}

// savedConfig is cfg as the run dir records it, and its YAML: the data file named by its absolute
// path, so that the config loads again from anywhere, and with its digest (data.digest), so that
// a resume on other data is refused and the TrainingHash tells the data apart. A data.digest set
// in cfg that the data does not match is an *InputError.
func savedConfig(cfg configs.Config) (configs.Config, []byte, error) {
	if p := cfg.Data.Path; p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return cfg, nil, err
		}
		cfg.Data.Path = abs
		digest, err := dataDigest(abs)
		if err != nil {
			return cfg, nil, &InputError{fmt.Errorf("data.path: %w", err)}
		}
		if cfg.Data.Digest != "" && cfg.Data.Digest != digest {
			return cfg, nil, &InputError{fmt.Errorf("data.digest: %s has SHA-256 %s, not %s", p, digest, cfg.Data.Digest)}
		}
		cfg.Data.Digest = digest
	}
	doc, err := cfg.YAML()
	return cfg, doc, err
}

// buildModel makes the workload's network on the job's device, and its optimizer.
func (j *job) buildModel() error {
	var err error
	if j.net, err = j.work.Spec().Build(j.dev); err != nil {
		return err
	}
	tc := j.cfg.Train
	if err := j.net.SetOptions(netOptions(j.cfg)); err != nil {
		return &InputError{err}
	}
	torch.SetCudnnBenchmark(tc.CudnnBenchmark)
	j.optim, err = torch.NewOptimizer(j.net, optimizerConfig(j.cfg))
	return err
}

// optimizerConfig is the optimizer that cfg describes.
func optimizerConfig(cfg configs.Config) torch.OptimizerConfig {
	oc := cfg.Optimizer
	return torch.OptimizerConfig{
		Name: oc.Name, LR: oc.LR, WeightDecay: oc.WeightDecay, Beta1: oc.Betas[0], Beta2: oc.Betas[1],
		Eps: oc.Eps, Momentum: oc.Momentum, Nesterov: oc.Nesterov,
	}
}

// loopConfig is what the loop needs of cfg, for a training split of n samples.
func loopConfig(cfg configs.Config, n int) Config {
	tc, sc := cfg.Train, cfg.Schedule
	lc := Config{
		Epochs: tc.Epochs, BatchSize: tc.BatchSize, MaxSteps: tc.MaxSteps,
		LogEvery: tc.LogEvery, GradClip: tc.GradClip, Seed: cfg.Seed,
	}
	lc.Schedule = Schedule{
		Name: sc.Name, BaseLR: cfg.Optimizer.LR, Warmup: sc.WarmupSteps, StepSize: sc.StepSize, Gamma: sc.Gamma,
		MinLR: sc.MinLR, Total: TotalSteps(n, lc),
	}
	return lc
}

// open creates or locks the run dir, finds the checkpoint to resume from (downloading a newer
// one from the remote copy), opens the event log and records the start of this process.
func (j *job) open(ctx context.Context) error {
	cfg := j.cfg
	var err error
	if j.store, err = checkpoint.Open(cfg.RunDir, j.storeOpt); err != nil {
		return err
	}
	latest, invalid, err := j.store.Latest()
	if err != nil && !errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return err
	}
	j.latest = latest
	var pulled *pull
	if url := cfg.RemoteURL(); url != "" {
		if j.remote, err = checkpoint.OpenRemote(ctx, url); err != nil {
			return err
		}
		// A fresh VM has an empty run dir: the run goes on from its copy in object storage.
		if pulled, err = pullRemote(ctx, j.remote, j.store, latest, cfg.RunDir); err != nil {
			return err
		}
		if pulled.ck != nil {
			j.latest = pulled.ck
		}
		invalid = append(invalid, pulled.invalid...)
	}
	if j.events, err = events.Open(cfg.RunDir); err != nil {
		return err
	}
	j.begin()
	j.reportFound(invalid, pulled)
	if j.remote != nil {
		j.ck.startMirror(j.remote, j.storeOpt, cfg.RunDir, j.latest, pulled.ck == nil)
	}
	return nil
}

// begin records the start of this process: the summary, the run_start event and the
// checkpointer that will write the run's checkpoints.
func (j *job) begin() {
	j.sum = &Summary{
		Name: j.cfg.Name, Device: j.dev, Threads: torch.NumThreads(), Params: j.net.NumParams(),
		Samples: j.work.Samples(), RunDir: j.cfg.RunDir, ConfigSHA: j.saved.Hash(),
	}
	j.events.Emit(events.RunStart{ConfigHash: j.sum.ConfigSHA, TrainingHash: j.saved.TrainingHash(),
		Device: string(j.dev), PID: os.Getpid(), Libtorch: torch.Version(), TotalSteps: j.loop.Schedule.Total,
		World: worldOf(j.group)})
	j.ck = &checkpointer{
		store: j.store, events: j.events, net: j.net, opt: j.optim, spec: j.work.Spec(), prep: j.work.Preprocessing(), strategy: j.strategy, group: j.group,
		metric: j.metric, log: j.log, config: j.savedYAML,
		manifest: checkpoint.Manifest{
			ConfigHash: j.sum.ConfigSHA, DataSeed: j.cfg.Seed, Libtorch: torch.Version(), Device: string(j.dev),
		},
	}
}

// worldOf is the size of a job's group for its events: 0 for a process alone.
func worldOf(p *group) int {
	if p == nil {
		return 0
	}
	return p.world()
}

// reportFound logs the checkpoints skipped as invalid and the one downloaded, if any, with
// their events.
func (j *job) reportFound(invalid []checkpoint.Invalid, pulled *pull) {
	for _, inv := range invalid {
		fmt.Fprintf(j.log, "warning: skipped invalid checkpoint %s: %s\n", inv.Dir, inv.Reason)
		j.events.Emit(events.CheckpointInvalid{Dir: inv.Dir, Reason: inv.Reason})
	}
	if pulled == nil || pulled.ck == nil {
		return
	}
	fmt.Fprintf(j.log, "downloaded step %d from %s (%.1f MB in %.1f s)\n", pulled.ck.Manifest.Step, j.remote.URL(),
		float64(pulled.bytes)/1e6, pulled.took.Seconds())
	j.events.Emit(events.CheckpointDownload{Step: pulled.ck.Manifest.Step, URL: j.remote.URL(),
		Bytes: pulled.bytes, DownloadMS: pulled.took.Seconds() * 1000})
}

// restore takes the run up at its newest checkpoint, if there is one, writes the run's
// config.yaml and teaches the strategy the run's history.
func (j *job) restore() error {
	if j.latest == nil {
		j.ck.manifest.RunID = newRunID()
	} else if err := j.resume(j.latest); err != nil {
		return err
	}
	j.pause("restore")
	if err := durable.WriteFile(filepath.Join(j.cfg.RunDir, ConfigFile), j.savedYAML, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(j.log, "%s: %s on %s (%d threads), libtorch %s | %s %d params | %s | %d steps\n",
		j.cfg.Name, j.work.Describe(), j.dev, j.sum.Threads, torch.Version(), j.work.Spec().Name(), j.sum.Params,
		j.work.Sizes(), j.loop.Schedule.Total)
	return j.teachStrategy()
}

// resume loads the state of ck, once the config it was made under is found compatible. A
// checkpoint whose state does not load (it verifies, but libtorch refuses a file: another shape,
// another libtorch) is reported as invalid, and the newest valid one before it is tried instead,
// and so on; resume fails when none is left, or when a config refuses the resume.
func (j *job) resume(ck *checkpoint.Checkpoint) error {
	for {
		changes, err := checkResume(j.saved, j.sum.ConfigSHA, ck, j.opt.Force)
		if err != nil {
			return err
		}
		if err = restore(ck, j.net, j.optim); err == nil {
			for _, c := range changes {
				fmt.Fprintf(j.log, "config changed since the checkpoint: %s\n", c)
			}
			break
		}
		if ck, err = j.before(ck, err); err != nil {
			return err
		}
	}
	j.takeUp(ck)
	fmt.Fprintf(j.log, "resumed from step %d, epoch %d, batch %d (%s)\n", j.from.Step, j.from.Epoch+1, j.from.Batch, ck.Dir)
	if was, now := max(ck.Manifest.World, 1), j.group.world(); was != now {
		fmt.Fprintf(j.log, "the checkpoint was made by %d process(es), this run has %d: the data order, weights and optimizer go on; dropout draws anew on the ranks it has no RNG state of\n", was, now)
	}
	if j.from.Step >= j.loop.Schedule.Total {
		fmt.Fprintf(j.log, "the run is complete: evaluating its final checkpoint (another run_dir trains anew)\n")
	}
	return j.events.Emit(events.Resume{Step: j.from.Step, Epoch: j.from.Epoch, Batch: j.from.Batch, Dir: ck.Dir})
}

// takeUp makes ck, whose state is restored, where the run goes on from: its position, and what
// the checkpoints to come carry over from it.
func (j *job) takeUp(ck *checkpoint.Checkpoint) {
	j.resumed = ck
	m := ck.Manifest
	j.from = Position{Epoch: m.Epoch, Batch: m.Batch, Step: int(m.Step), LossSum: m.Loss * float64(m.Batch)}
	j.ck.manifest.RunID, j.ck.computeBefore, j.ck.lastStep = m.RunID, m.ComputeSeconds, int(m.Step)
}

// before reports ck, whose state did not load (loadErr), as an invalid checkpoint (a warning and a
// checkpoint_invalid event) and returns the newest valid checkpoint before it, reporting those it
// skipped; or an error when there is none. ck itself stays: it verifies, and retention or a
// checkpoint of its step replaces it.
func (j *job) before(ck *checkpoint.Checkpoint, loadErr error) (*checkpoint.Checkpoint, error) {
	j.reportFound([]checkpoint.Invalid{{Dir: ck.Dir, Reason: loadErr.Error()}}, nil)
	prev, invalid, err := j.store.Before(ck.Manifest.Step)
	j.reportFound(invalid, nil)
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return nil, fmt.Errorf("resume from %s: %w; no valid checkpoint before it is left (move the run dir aside to train anew)", ck.Dir, loadErr)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(j.log, "resuming from the previous valid checkpoint, %s\n", prev.Dir)
	return prev, nil
}

// teachStrategy tells the strategy the run's history: its interruptions, and the best value of
// its metric among the checkpoints.
func (j *job) teachStrategy() error {
	past, err := pastInterruptions(j.cfg.RunDir, j.events.Incarnation())
	if err != nil {
		return err
	}
	for _, in := range past {
		j.strategy.Interrupted(in.uptime, in.notice)
	}
	seeder, ok := j.strategy.(checkpoint.BestSeeder)
	if !ok {
		return nil
	}
	all, _, err := checkpoint.List(j.cfg.RunDir)
	if err != nil {
		return err
	}
	for _, c := range all {
		if v, ok := c.Manifest.Metrics[j.metric]; ok {
			seeder.SeedBest(v)
		}
	}
	return nil
}

// train runs the loop from the restored position until the end, an error or a notice.
func (j *job) train(ctx context.Context) error {
	if j.ck != nil {
		j.ck.started = time.Now()
		j.strategy.Start(j.ck.started)
	}
	loop := &Loop{Net: j.net, Opt: j.optim, Task: j.work, Config: j.loop, Start: j.from, Checkpoints: j.checkpoints(),
		Events: j.events, Stop: j.opt.Stop, Log: j.log, Terminal: j.opt.Terminal, Pause: j.opt.Pause, Samples: j.opt.Samples, group: j.group}
	if j.group.leader() && j.elastic != nil {
		loop.joiners = j.elastic.pendingJoiners
	}
	var err error
	j.sum.Result, err = loop.Run(ctx)
	if j.ck != nil {
		j.ck.wait()
	}
	if err == nil && j.group != nil {
		err = j.reportGroup()
	}
	j.sum.Wall = time.Since(j.started)
	return err
}

// reportGroup measures what the group's gradient sums cost (every rank takes part), and rank 0
// logs it and records it in the group_stats event.
func (j *job) reportGroup() error {
	s, err := j.group.measure(j.net)
	if err != nil || !j.group.leader() || s.Steps == 0 {
		return err
	}
	fmt.Fprintf(j.log, "gradient sums (%s, %d processes, %.1f MB): %.2f ms per step, a bare allreduce %.2f ms (%.0f%%)\n",
		s.Backend, s.World, float64(s.Bytes)/1e6, s.ReduceMS, s.BareMS, 100*s.BareMS/s.ReduceMS)
	return j.events.Emit(s)
}

// complete ends a whole training: the final checkpoint (unless the last step has one), the test
// scores and metrics.json. A notice that comes before the test scores are done stops it once the
// final checkpoint is durable (a resume from it scores the test split again).
func (j *job) complete() error {
	res := j.sum.Result
	_, unsaved, err := j.group.agree(nil, j.group.leader() && j.ck.lastStep != res.Steps)
	if err != nil {
		return err
	}
	if unsaved[0] {
		j.pause("final-save")
		if err := j.checkpoints().Save(res.End, codes.Final, res.lastMetrics()); err != nil {
			return err
		}
	}
	if err := j.stoppedTogether("the final checkpoint", res.Steps); err != nil {
		return err
	}
	if j.ck != nil {
		j.sum.ComputeSeconds = j.ck.computeSeconds()
	}
	shard, err := j.group.shard(j.net)
	if err != nil {
		return err
	}
	var notice *Notice
	var agreeErr error
	test, err := j.work.Test(j.net, shard, func() bool {
		j.pause("final-eval")
		notice, _, agreeErr = j.group.agree(j.notice())
		return notice != nil || agreeErr != nil
	})
	switch {
	case agreeErr != nil:
		return agreeErr
	case notice != nil:
		return j.stop(notice, "the test scoring", res.Steps)
	case err != nil:
		return fmt.Errorf("score test split: %w", err)
	}
	var absent map[string]string
	j.sum.Test, absent = test.Finite()
	warnAbsent(j.log, "test", absent)
	if !j.group.leader() {
		return nil
	}
	return writeMetrics(j.cfg.RunDir, j.sum)
}

// stoppedTogether is stopped for a whole group: a notice to any rank stops every rank.
func (j *job) stoppedTogether(phase string, step int) error {
	notice, _, err := j.group.agree(j.notice())
	if err != nil {
		return err
	}
	if notice != nil {
		return j.stop(notice, phase, step)
	}
	return nil
}

// checkpoints is the job's Checkpointer: rank 0's (or a process alone's) writes the checkpoints;
// another rank's sends its part to rank 0.
func (j *job) checkpoints() Checkpointer {
	if j.group.leader() {
		return j.ck
	}
	return follower{j.group}
}

// end closes the run's record, whatever its outcome err, in this order: the uploads still in
// flight (until checkpoint.remote_grace after a notice or an error; all of them after a whole
// training, whose final upload failing makes the run fail), the exit event, and the last upload
// of the log, which then holds that event. It returns the run's outcome.
func (j *job) end(ctx context.Context, err error) error {
	var deadline time.Time
	if j.ck.mirror != nil {
		deadline, err = j.ck.finishUploads(ctx, err, j.cfg.Checkpoint.RemoteGrace, j.sum)
		j.ck.mirror.Close()
	}
	j.emitExit(err)
	if j.ck.mirror != nil {
		uctx, cancel := contextUntil(context.WithoutCancel(ctx), deadline)
		defer cancel()
		if err := j.remote.PutFile(uctx, filepath.Join(j.cfg.RunDir, events.FileName)); err != nil {
			fmt.Fprintf(j.log, "warning: %v\n", err)
		}
	}
	return err
}

// emitExit records the exit of this process with the outcome err.
func (j *job) emitExit(err error) {
	// A process that stops before the loop (a refused config, a failed restore) has done no step.
	exit := events.Exit{Code: ExitCode(err), Reason: "done"}
	if err != nil {
		exit.Reason = err.Error()
	}
	var pe *PreemptedError
	switch {
	case j.sum.Result != nil:
		exit.Step = j.sum.Result.Steps
	case errors.As(err, &pe):
		exit.Step = max(pe.Step, 0)
	}
	if errors.As(err, &pe) {
		ms := time.Since(pe.Notice.At).Milliseconds()
		exit.Signal, exit.SignalToExitMS = pe.Notice.Signal.String(), &ms
	}
	var pl *PeerLostError
	if errors.As(err, &pl) {
		exit.PeerLost, exit.LostRanks = true, pl.Missing
	}
	j.events.Emit(exit)
}

// release frees what the phases acquired, those that got that far: the log, the remote, the run
// dir's lock, the optimizer, the model and the data's background work.
func (j *job) release() {
	if j.events != nil {
		j.events.Close()
	}
	if j.remote != nil {
		j.remote.Close()
	}
	if j.store != nil {
		j.store.Close()
	}
	if j.optim != nil {
		j.optim.Close()
	}
	if j.net != nil {
		j.net.Close()
	}
	if j.work != nil {
		j.work.Close()
	}
	j.group.close()
	j.elastic.close()
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
	return durable.WriteFile(filepath.Join(dir, "metrics.json"), append(doc, '\n'), 0o644)
}
