//go:build testhooks

package main

// The end-to-end tests build the binary with -tags testhooks (see TestMain), which compiles this
// file in; a normal build has neither the environment variable below nor the slow file system.

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"spottrain/checkpoint"
	"spottrain/internal/checkpointtest"
	"spottrain/train"
)

// ckptWriteDelayEnv slows every checkpoint write chunk of a training job down by its duration
// (e.g. 20ms), so that the crash tests' kills and signals land inside checkpoint writes.
const ckptWriteDelayEnv = "SPOTTRAIN_TEST_CKPT_WRITE_DELAY"

// memoryEnv sets train.Options.Memory, in bytes: the memory the data may take.
const memoryEnv = "SPOTTRAIN_TEST_MEMORY"

func init() {
	testHook = func(opt *train.Options) error {
		if v := os.Getenv(memoryEnv); v != "" {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return usageError{fmt.Sprintf("%s: %v", memoryEnv, err)}
			}
			opt.Memory = n
		}
		v := os.Getenv(ckptWriteDelayEnv)
		if v == "" {
			return nil
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return usageError{fmt.Sprintf("%s: %v", ckptWriteDelayEnv, err)}
		}
		opt.FS = checkpointtest.SlowFS(checkpoint.OSFS{}, d)
		return nil
	}
}
