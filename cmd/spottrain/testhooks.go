//go:build testhooks

package main

// The end-to-end tests build the binary with -tags testhooks (see TestMain), which compiles this
// file in; a normal build has neither the environment variables below nor the slow file system.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spottrain/checkpoint"
	"spottrain/internal/checkpointtest"
	"spottrain/train"
)

const (
	// ckptWriteDelayEnv slows every checkpoint write chunk of a training job down by its duration
	// (e.g. 20ms), so that the crash tests' kills and signals land inside checkpoint writes.
	ckptWriteDelayEnv = "SPOTTRAIN_TEST_CKPT_WRITE_DELAY"
	// pauseEnv holds points of a training job open (train.Options.Pause), as POINT=DURATION
	// pairs separated by commas (e.g. eval=200ms): each time the job passes POINT it waits
	// DURATION, or less once a notice is pending, and the first time it prints "test hook:
	// pausing in POINT" first; so a test's signal lands inside that phase, and the time from it
	// to the exit is the job's own.
	pauseEnv = "SPOTTRAIN_TEST_PAUSE"
)

// memoryEnv sets train.Options.Memory, in bytes: the memory the data may take.
const memoryEnv = "SPOTTRAIN_TEST_MEMORY"

// samplesEnv names a directory where every training process appends the samples of each of its
// steps (train.Options.Samples) to a file of its own, DIR/<pid>.samples, one line a step:
// "WORLD RANK STEP i1,i2,...", the group's size and the rank in it at that step (1 0 alone).
const samplesEnv = "SPOTTRAIN_TEST_SAMPLES"

func init() {
	testHook = func(opt *train.Options) error {
		if v := os.Getenv(memoryEnv); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return usageError{fmt.Sprintf("%s: %v", memoryEnv, err)}
			}
			opt.Memory = n
		}
		if v := os.Getenv(ckptWriteDelayEnv); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return usageError{fmt.Sprintf("%s: %v", ckptWriteDelayEnv, err)}
			}
			opt.FS = checkpointtest.SlowFS(checkpoint.OSFS{}, d)
		}
		if dir := os.Getenv(samplesEnv); dir != "" {
			traceSamples(opt, dir)
		}
		if v := os.Getenv(pauseEnv); v != "" {
			pauses := map[string]time.Duration{}
			for _, kv := range strings.Split(v, ",") {
				point, dur, _ := strings.Cut(kv, "=")
				d, err := time.ParseDuration(dur)
				if err != nil {
					return usageError{fmt.Sprintf("%s: %s: %v", pauseEnv, kv, err)}
				}
				pauses[point] = d
			}
			announced := map[string]bool{}
			log, stop := opt.Log, opt.Stop
			opt.Pause = func(point string) {
				d, ok := pauses[point]
				if !ok {
					return
				}
				if !announced[point] {
					announced[point] = true
					fmt.Fprintf(log, "test hook: pausing in %s\n", point)
				}
				for end := time.Now().Add(d); time.Now().Before(end) && len(stop) == 0; {
					time.Sleep(time.Millisecond) // a channel's length cannot be waited on
				}
			}
		}
		return nil
	}
}

// traceSamples makes opt's job write its samples to dir (see samplesEnv). A write that fails is
// lost: the test reading the files then finds a step missing.
func traceSamples(opt *train.Options, dir string) {
	name := filepath.Join(dir, strconv.Itoa(os.Getpid())+".samples")
	opt.Samples = func(step, rank, world int, idx []int) {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return
		}
		defer f.Close()
		ids := make([]string, len(idx))
		for i, v := range idx {
			ids[i] = strconv.Itoa(v)
		}
		fmt.Fprintf(f, "%d %d %d %s\n", world, rank, step, strings.Join(ids, ","))
	}
}
