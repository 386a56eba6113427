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
	tree := (&configFlags{dir: *dir}).tree()
	var names []string
	for _, pattern := range fs.Args() {
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
	// Every experiment loads before any run starts: a bad one stops the batch at once.
	var all []*runJob
	var dirs []string
	for _, n := range names {
		cf := &configFlags{experiment: n, dir: *dir, sets: *sets, cmd: "batch"}
		cfg, err := cf.load()
		if err != nil {
			return err
		}
		for i := range *reps {
			all = append(all, &runJob{flags: cf, index: i, runsDir: *runsDir})
			dirs = append(dirs, runDirOf(*runsDir, cfg.Name, i))
		}
	}

	start := time.Now()
	var mu sync.Mutex
	var failed []string
	done, skipped, stopped := 0, 0, 0
	started := make([]bool, len(all))
	queue := make(chan int)
	var wg sync.WaitGroup
	for range *jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				if ctx.Err() != nil {
					continue // stopped: nothing more starts
				}
				job := all[i]
				tag := fmt.Sprintf("[%*d/%d] %s rep %d", len(fmt.Sprint(len(all))), i+1, len(all), job.flags.experiment, job.index)
				mu.Lock()
				started[i] = true
				mu.Unlock()
				if !analysis.Completed(dirs[i]) {
					mu.Lock()
					fmt.Fprintf(stdout, "%s: running (log: %s)\n", tag, filepath.Join(dirs[i], "run.log"))
					mu.Unlock()
				}
				o, err := runOne(ctx, job)
				mu.Lock()
				switch {
				case errors.Is(err, errStopped):
					stopped++
					fmt.Fprintf(stdout, "%s: stopped\n", tag)
				case err != nil:
					failed = append(failed, fmt.Sprintf("%s: %v", tag, err))
					fmt.Fprintf(stdout, "%s: FAILED: %v\n", tag, err)
				case o.skipped:
					skipped++
					fmt.Fprintf(stdout, "%s: complete already, skipped\n", tag)
				default:
					done++
					fmt.Fprintf(stdout, "%s: done in %s (%s of spot time), %s\n", tag, o.wall.Round(time.Second/10), o.spot().Round(time.Minute), o.describe())
				}
				mu.Unlock()
			}
		}()
	}
send:
	for i := range all {
		select {
		case queue <- i:
		case <-ctx.Done():
			break send
		}
	}
	close(queue)
	wg.Wait()
	if ctx.Err() != nil {
		var skippedRuns []string
		for i, job := range all {
			if !started[i] {
				skippedRuns = append(skippedRuns, fmt.Sprintf("%s rep %d", job.flags.experiment, job.index))
			}
		}
		notStarted := "none"
		if len(skippedRuns) > 0 {
			notStarted = fmt.Sprintf("%d (%s)", len(skippedRuns), strings.Join(skippedRuns, ", "))
		}
		fmt.Fprintf(stdout, "batch: stopped by a signal: %d runs done, %d complete already, %d failed, %d stopped; not started: %s\n",
			done, skipped, len(failed), stopped, notStarted)
		return errStopped
	}
	fmt.Fprintf(stdout, "batch: %d runs done, %d complete already, %d failed, in %s; check them with 'spottrain verify %s'\n",
		done, skipped, len(failed), time.Since(start).Round(time.Second), *runsDir)
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed; the first: %s", len(failed), len(all), failed[0])
	}
	return nil
}
