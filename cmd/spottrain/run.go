package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"spottrain/analysis"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/preemption"
)

// errStopped ends a run or batch that a signal stopped: its trainer wrote an emergency
// checkpoint, and the same command goes on from there.
var errStopped = errors.New("stopped by a signal: run the same command again to go on")

func runRun(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("run", "run (--experiment NAME | --config FILE) [--index N] [--runs-dir DIR] [--set key=value]... [--nproc-per-node N] [--nnodes N --node-rank R --master-addr HOST --master-port P]", stdout)
	cf := addConfigFlags(fs, "run")
	cf.addGroupFlags(fs)
	index := fs.Int("index", 0, "the run's number among repetitions: the interrupt pattern's seed is interrupts.seed + N")
	runsDir := fs.String("runs-dir", "runs", "where run dirs go: `DIR`/NAME/rep-N")
	force := fs.Bool("force", false, "resume the run dir's checkpoints even though the config changed in a way that breaks resume")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	if *index < 0 {
		return usageError{fmt.Sprintf("run: --index must be >= 0 (got %d)", *index)}
	}
	o, err := runOne(ctx, &runJob{flags: cf, index: *index, runsDir: *runsDir, force: *force, out: stdout})
	if o != nil && o.skipped {
		fmt.Fprintf(stdout, "%s is complete already: nothing to do ('spottrain verify %s' checks it)\n", o.runDir, o.runDir)
	}
	if o != nil && !o.skipped && err == nil {
		fmt.Fprintf(stdout, "[run] %s: completed in %s wall (%s of spot time), %s\n", o.runDir, o.wall.Round(time.Second/10), o.spot().Round(time.Minute), o.describe())
	}
	return err
}

// runJob is one run of an experiment under its interrupt pattern.
type runJob struct {
	flags   *configFlags
	index   int
	runsDir string
	force   bool
	// out gets the trainer's output and the runner's lines; nil: the run dir's run.log.
	out io.Writer
}

// trainer returns a maker of the job's trainer command: the program self's train with the job's
// config flags, the overrides sets and --force if given, its output to out.
func (job *runJob) trainer(self string, sets []string, out io.Writer) func() *exec.Cmd {
	args := append([]string{"train"}, job.flags.args(sets...)...)
	if job.force {
		args = append(args, "--force")
	}
	return func() *exec.Cmd {
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = out, out
		return cmd
	}
}

// runOutcome is what a run did.
type runOutcome struct {
	runDir    string
	skipped   bool // complete already
	wall      time.Duration
	timeScale float64
	machines  int // simulated
	starts    int
	notices   int  // SIGTERM sent on schedule
	kills     int  // SIGKILL sent on schedule (without notice) or after the grace period
	stalled   bool // the stall was reported
}

func (o *runOutcome) spot() time.Duration {
	return time.Duration(float64(o.wall) * o.timeScale)
}

func (o *runOutcome) describe() string {
	return fmt.Sprintf("%d starts, interruptions: %d with notice, %d kills", o.starts, o.notices, o.kills)
}

// runDirOf returns where run index of the config named name goes.
func runDirOf(runsDir, name string, index int) string {
	return filepath.Join(runsDir, name, fmt.Sprintf("rep-%d", index))
}

// machineRanks returns the override that makes the trainer of cfg a group of a rank per GPU of
// every simulated machine (interrupts.machines times distributed.nproc_per_node processes on this
// one), or none for a job of one machine.
func machineRanks(cfg configs.Config) []string {
	if n := cfg.Interrupts.Machines; n > 1 {
		return []string{fmt.Sprintf("distributed.nproc_per_node=%d", n*cfg.Distributed.NProcPerNode)}
	}
	return nil
}

// machinesText is ", N machines" for a job of several simulated machines, else "".
func machinesText(n int) string {
	if n > 1 {
		return fmt.Sprintf(", %d machines", n)
	}
	return ""
}

// runOne runs the trainer (this binary's train command) as a child process in the run dir, under
// the config's interrupt pattern seeded with the run index, and starts it again after each
// interruption until it completes. Its own events go to the run's events.jsonl. A run that
// completed before is skipped. When ctx ends, the child gets SIGTERM (and SIGKILL after the grace
// period) and runOne returns errStopped.
func runOne(ctx context.Context, job *runJob) (*runOutcome, error) {
	first, err := job.flags.load()
	if err != nil {
		return nil, err
	}
	runDir := runDirOf(job.runsDir, first.Name, job.index)
	sets := append([]string{"run_dir=" + runDir}, machineRanks(first)...)
	cfg, err := job.flags.load(sets...)
	if err != nil {
		return nil, err
	}
	o := &runOutcome{runDir: runDir, timeScale: cfg.Interrupts.TimeScale, machines: cfg.Interrupts.Machines}
	if analysis.Completed(runDir) {
		o.skipped = true
		return o, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to start the trainer: %w", err)
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	out := job.out
	if out == nil {
		f, err := os.OpenFile(filepath.Join(runDir, "run.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		out = f
	}
	evlog, err := events.OpenRunner(runDir)
	if err != nil {
		return nil, err
	}
	defer evlog.Close()

	pc := cfg.Interrupts.ForRun(job.index)
	runner, err := preemption.NewRunner(pc, job.trainer(self, sets, out)) // pattern none: never interrupts
	if err != nil {
		return nil, err // validated with the config already
	}
	if pc.Machines > 1 {
		runner.RanksPerMachine = first.Distributed.NProcPerNode
	}
	// OnEvent runs on Run's goroutine, and o is read after Run returns.
	runner.OnEvent = func(p events.Payload) {
		if err := evlog.Emit(p); err != nil {
			fmt.Fprintf(out, "[run] warning: %v\n", err)
		}
		o.report(out, p)
	}
	evlog.Emit(events.RunnerStart{
		Name: cfg.Name, Index: job.index, Pattern: cfg.Interrupts.Pattern, Seed: pc.Seed,
		TimeScale: cfg.Interrupts.TimeScale, NoNoticeShare: pc.NoNoticeShare, PID: os.Getpid(), Machines: pc.Machines,
	})
	fmt.Fprintf(out, "[run] %s: pattern %s (seed %d)%s, %.0f s of spot time per second, run dir %s\n",
		cfg.Name, cfg.Interrupts.Pattern, pc.Seed, machinesText(pc.Machines), cfg.Interrupts.TimeScale, runDir)
	start := time.Now()
	o.starts = 1
	err = runner.Run(ctx)
	o.wall = time.Since(start)
	if ctx.Err() != nil {
		return o, errStopped
	}
	return o, err
}

// warnStall warns, once a run, when the last analysis.StallStarts trainer starts or more were cut
// before their first step (the run's log says it): the interruptions come faster than a trainer
// starts, and the run goes nowhere.
func (o *runOutcome) warnStall(out io.Writer) {
	if o.stalled {
		return
	}
	r, err := analysis.ReadRun(o.runDir)
	if err != nil {
		fmt.Fprintf(out, "[run] warning: %v\n", err)
		return
	}
	if _, n := r.CutStarts(); n >= analysis.StallStarts {
		o.stalled = true
		fmt.Fprintf(out, "[run] warning: the last %d trainer starts were interrupted before their first step: the interruptions come faster than a trainer starts, and the run makes no progress\n", n)
	}
}

// report counts and logs an event of the runner.
func (o *runOutcome) report(out io.Writer, p events.Payload) {
	switch p := p.(type) {
	case events.InterruptSent:
		if p.Kind == codes.Kill {
			o.kills++
		} else if p.Reason == codes.Schedule {
			o.notices++
		}
		at := ""
		if p.AtSpotS != 0 {
			at = fmt.Sprintf(" at %s of spot time", (time.Duration(p.AtSpotS) * time.Second).Round(time.Second))
		}
		sig := "SIGTERM"
		if p.Kind == codes.Kill {
			sig = "SIGKILL"
		}
		on := ""
		if o.machines > 1 && p.Reason == codes.Schedule {
			on = fmt.Sprintf(" on machine %d", p.Machine)
		}
		fmt.Fprintf(out, "[run] interrupt%s%s: %s to pid %v (%v)\n", at, on, sig, p.PID, p.Reason)
	case events.ChildExit:
		how := fmt.Sprintf("exited %v", p.Code)
		if p.Signal != "" {
			how = "killed by " + p.Signal
		}
		fmt.Fprintf(out, "[run] trainer pid %v %s\n", p.PID, how)
		o.warnStall(out)
	case events.ChildStart:
		fmt.Fprintf(out, "[run] trainer started: pid %v\n", p.PID)
	case events.Restart:
		o.starts++
		fmt.Fprintf(out, "[run] restart %v after %.0f s of spot time (a new VM)\n", p.Attempt, p.DelayS)
	default:
		fmt.Fprintf(out, "[run] %s %+v\n", p.EventType(), p)
	}
}
