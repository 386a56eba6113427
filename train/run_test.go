package train_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/train"
)

// tinyConfig is a job of a few dozen steps that checkpoints every 2 of them.
func tinyConfig(t *testing.T) configs.Config {
	t.Helper()
	c := configs.Default()
	c.Device, c.Threads, c.RunDir = "cpu", 1, filepath.Join(t.TempDir(), "run")
	c.Data.LSTM.Days, c.Data.LSTM.LookbackHours, c.Data.LSTM.HorizonHours = 30, 24, 6
	c.Model.LSTM.HiddenSize, c.Model.LSTM.NumLayers = 8, 1
	c.Train.Epochs, c.Train.BatchSize, c.Train.LogEvery = 1, 32, 5
	c.Schedule.WarmupSteps = 2
	c.Checkpoint.EverySteps, c.Checkpoint.EverySeconds, c.Checkpoint.Keep = 2, 0, 100
	require.NoError(t, c.Validate())
	return c
}

// noSpaceFS fails every payload write of the checkpoint whose temp dir name contains step with
// ENOSPC, as a full disk would.
type noSpaceFS struct {
	checkpoint.OSFS
	step  string // e.g. "step-00000004"
	fails atomic.Int32
}

func (f *noSpaceFS) Create(name string) (checkpoint.File, error) {
	file, err := f.OSFS.Create(name)
	if err != nil || !strings.Contains(name, f.step) {
		return file, err
	}
	return &fullFile{File: file, fs: f}, nil
}

type fullFile struct {
	checkpoint.File
	fs *noSpaceFS
}

func (f *fullFile) Write(p []byte) (int, error) {
	f.fs.fails.Add(1)
	return 0, syscall.ENOSPC
}

// NoSpace: a periodic checkpoint that hits a full disk is reported, training goes on from the
// previous checkpoints, and the run completes with a final checkpoint.
func TestRunPeriodicCheckpointNoSpace(t *testing.T) {
	cfg := tinyConfig(t)
	fsys := &noSpaceFS{step: checkpoint.DirName(4)}
	var log strings.Builder
	sum, err := train.Run(context.Background(), cfg, train.Options{Log: &log, FS: fsys})
	require.NoError(t, err)
	assert.Positive(t, fsys.fails.Load(), "the fault was hit")
	assert.Contains(t, log.String(), "warning: periodic checkpoint failed")
	assert.Contains(t, log.String(), "no space left on device")

	cks, invalid, err := checkpoint.List(cfg.RunDir)
	require.NoError(t, err)
	assert.Empty(t, invalid)
	var steps []int64
	for _, c := range cks {
		steps = append(steps, c.Manifest.Step)
	}
	assert.NotContains(t, steps, int64(4), "the failed checkpoint does not exist")
	assert.Contains(t, steps, int64(2), "the previous one is intact")
	assert.Equal(t, int64(sum.Result.Steps), steps[len(steps)-1], "the final checkpoint is there")
	entries, err := os.ReadDir(cfg.RunDir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), ".tmp"), "temp dir %s left behind", e.Name())
	}
	failed := eventstest.Of[events.CheckpointFailed](eventstest.Read(t, cfg.RunDir))
	require.Len(t, failed, 1)
	assert.Contains(t, failed[0].Error, "no space left on device")
}

// An emergency checkpoint that fails is an error (exit 1, not 75: nothing new was saved), and
// the checkpoints committed before it stay intact.
func TestRunEmergencyCheckpointNoSpace(t *testing.T) {
	cfg := tinyConfig(t)
	cfg.Checkpoint.EverySteps = 4
	fsys := &noSpaceFS{step: checkpoint.DirName(6)} // the notice comes with the log line of step 5: the step after it is saved
	stop := make(chan train.Notice, 1)
	task := stopAfter(stop, 5)
	_, err := train.Run(context.Background(), cfg, train.Options{Log: task, FS: fsys, Stop: stop})
	require.Error(t, err)
	assert.Equal(t, codes.ExitFailure, train.ExitCode(err), "%v", err)
	assert.Contains(t, err.Error(), "emergency checkpoint")
	assert.Contains(t, err.Error(), "no space left on device")
	var pe *train.PreemptedError
	assert.False(t, errors.As(err, &pe))

	cks, invalid, err := checkpoint.List(cfg.RunDir)
	require.NoError(t, err)
	assert.Empty(t, invalid)
	require.Len(t, cks, 1)
	assert.Equal(t, int64(4), cks[0].Manifest.Step)
	exits := eventstest.Of[events.Exit](eventstest.Read(t, cfg.RunDir))
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitFailure, exits[0].Code)
}

// stopAfter returns a log writer that sends a notice on stop once the loop has logged step n.
func stopAfter(stop chan<- train.Notice, n int) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		if strings.HasPrefix(string(p), "step "+strconv.Itoa(n)+"/") {
			stop <- train.Notice{Signal: syscall.SIGTERM, At: time.Now()}
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
