package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"spottrain/analysis"
)

func runBatch(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("batch", "batch EXPERIMENT|GLOB... [--reps N] [--runs-dir DIR] [--jobs N] [--set key=value]...", stdout)
	dir := fs.String("config-dir", "", "the config tree `DIR`; default: the one built into the binary")
	sets := fs.StringArray("set", nil, "override a value of every experiment, e.g. --set threads=1 (repeatable)")
	reps := fs.Int("reps", 3, "repetitions of each experiment: run index 0..N-1 seeds its interrupt pattern")
	runsDir := fs.String("runs-dir", "runs", "where run dirs go: `DIR`/NAME/rep-N")
	jobs := fs.Int("jobs", 1, "runs at a time (each trainer uses the config's threads)")
	if err := fs.Parse(args); err != nil {
		return parseError(fs.Name(), err)
	}
	if fs.NArg() == 0 {
		return usageError{"batch: name at least one experiment (or a glob such as 'lstm-*')"}
	}
	if *reps < 1 || *jobs < 1 {
		return usageError{fmt.Sprintf("batch: --reps and --jobs must be >= 1 (got %d, %d)", *reps, *jobs)}
	}
	b := &batch{out: stdout}
	if err := b.load(fs.Args(), *dir, *sets, *reps, *runsDir); err != nil {
		return err
	}
	start := time.Now()
	b.run(ctx, *jobs)
	if ctx.Err() != nil {
		fmt.Fprintf(stdout, "batch: stopped by a signal: %d runs done, %d complete already, %d failed, %d stopped; not started: %s\n",
			b.done, b.skipped, len(b.failed), b.stopped, b.notStarted())
		return errStopped
	}
	fmt.Fprintf(stdout, "batch: %d runs done, %d complete already, %d failed, in %s; check them with 'spottrain verify %s'\n",
		b.done, b.skipped, len(b.failed), time.Since(start).Round(time.Second), *runsDir)
	if len(b.failed) > 0 {
		return fmt.Errorf("%d of %d runs failed; the first: %s", len(b.failed), len(b.jobs), b.failed[0])
	}
	return nil
}

// A batch is the runs of a `spottrain batch`, a few at a time, and their tally.
type batch struct {
	jobs []*runJob
	dirs []string // the run dir of each job
	out  io.Writer

	mu                     sync.Mutex // guards what follows, and out
	started                []bool     // by job
	done, skipped, stopped int
	failed                 []string // "tag: error" of each failed run
}

// load makes the jobs: reps runs of each experiment that patterns name, in runsDir. Every
// experiment loads before any run starts: a bad one stops the batch at once.
func (b *batch) load(patterns []string, dir string, sets []string, reps int, runsDir string) error {
	tree := (&configFlags{dir: dir}).tree()
	var names []string
	for _, pattern := range patterns {
		matched, err := tree.Match(pattern)
		if err != nil {
			return err
		}
		for _, n := range matched {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	for _, n := range names {
		cf := &configFlags{experiment: n, dir: dir, sets: sets, cmd: "batch"}
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		for i := range reps {
			b.jobs = append(b.jobs, &runJob{flags: cf, index: i, runsDir: runsDir})
			b.dirs = append(b.dirs, runDirOf(runsDir, cfg.Name, i))
		}
	}
	b.started = make([]bool, len(b.jobs))
	return nil
}

// run runs the jobs, workers at a time, until they are done or ctx is cancelled: then nothing
// more starts, and the runs in progress stop with their emergency checkpoints.
func (b *batch) run(ctx context.Context, workers int) {
	queue := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				if ctx.Err() == nil {
					b.runJob(ctx, i)
				}
			}
		}()
	}
send:
	for i := range b.jobs {
		select {
		case queue <- i:
		case <-ctx.Done():
			break send
		}
	}
	close(queue)
	wg.Wait()
}

// runJob runs job i and tallies its outcome.
func (b *batch) runJob(ctx context.Context, i int) {
	job := b.jobs[i]
	tag := fmt.Sprintf("[%*d/%d] %s rep %d", len(fmt.Sprint(len(b.jobs))), i+1, len(b.jobs), job.flags.experiment, job.index)
	b.mu.Lock()
	b.started[i] = true
	if !analysis.Completed(b.dirs[i]) {
		fmt.Fprintf(b.out, "%s: running (log: %s)\n", tag, filepath.Join(b.dirs[i], "run.log"))
	}
	b.mu.Unlock()
	o, err := runOne(ctx, job)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case errors.Is(err, errStopped):
		b.stopped++
		fmt.Fprintf(b.out, "%s: stopped\n", tag)
	case err != nil:
		b.failed = append(b.failed, fmt.Sprintf("%s: %v", tag, err))
		fmt.Fprintf(b.out, "%s: FAILED: %v\n", tag, err)
	case o.skipped:
		b.skipped++
		fmt.Fprintf(b.out, "%s: complete already, skipped\n", tag)
	default:
		b.done++
		fmt.Fprintf(b.out, "%s: done in %s (%s of spot time), %s\n", tag, o.wall.Round(time.Second/10), o.spot().Round(time.Minute), o.describe())
	}
}

// notStarted names the jobs that never started: "none", or "N (experiment rep i, ...)".
func (b *batch) notStarted() string {
	var names []string
	for i, job := range b.jobs {
		if !b.started[i] {
			names = append(names, fmt.Sprintf("%s rep %d", job.flags.experiment, job.index))
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return fmt.Sprintf("%d (%s)", len(names), strings.Join(names, ", "))
}
