package train_test

import (
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/torch"
	"spottrain/train"
)

func TestOrderIsADeterministicPermutation(t *testing.T) {
	a := train.Order(7, 3, 1000)
	assert.Equal(t, a, train.Order(7, 3, 1000), "same seed and epoch, same order")
	assert.NotEqual(t, a, train.Order(7, 4, 1000), "another epoch, another order")
	assert.NotEqual(t, a, train.Order(8, 3, 1000), "another seed, another order")
	sorted := append([]int(nil), a...)
	sort.Ints(sorted)
	for i, v := range sorted {
		require.Equal(t, i, v, "a permutation of 0..n-1")
	}
	moved := 0
	for i, v := range a {
		if i != v {
			moved++
		}
	}
	assert.Greater(t, moved, 900, "shuffled, not the identity")
}

func TestStepsArithmetic(t *testing.T) {
	cases := []struct {
		n    int
		c    train.Config
		per  int
		want int
	}{
		{n: 100, c: train.Config{Epochs: 3, BatchSize: 10}, per: 10, want: 30},
		{n: 101, c: train.Config{Epochs: 3, BatchSize: 10}, per: 11, want: 33},
		{n: 5, c: train.Config{Epochs: 2, BatchSize: 64}, per: 1, want: 2},
		{n: 100, c: train.Config{Epochs: 3, BatchSize: 10, MaxSteps: 25}, per: 10, want: 25},
		{n: 100, c: train.Config{Epochs: 3, BatchSize: 10, MaxSteps: 99}, per: 10, want: 30},
	}
	for _, c := range cases {
		assert.Equal(t, c.per, train.BatchesPerEpoch(c.n, c.c.BatchSize), "%+v", c)
		assert.Equal(t, c.want, train.TotalSteps(c.n, c.c), "%+v", c)
	}
}

// countingTask records the batches the loop asks for; its samples are a learnable toy sequence.
type countingTask struct {
	n       int
	batches [][]int
	evals   int
	x, y    []float32
}

func (c *countingTask) TrainSize() int { return c.n }

func (c *countingTask) Batch(idx []int) (torch.Host, torch.Host) {
	c.batches = append(c.batches, append([]int(nil), idx...))
	c.x, c.y = make([]float32, len(idx)*4), make([]float32, len(idx))
	for i, j := range idx {
		for k := 0; k < 4; k++ {
			c.x[i*4+k] = float32(j%7) / 7
		}
		c.y[i] = float32(j%7) / 7
	}
	return torch.Float32s(c.x, int64(len(idx)), 4, 1), torch.Float32s(c.y, int64(len(idx)), 1)
}

func (c *countingTask) Evaluate(*torch.Net, train.Shard, func() bool) (train.Metrics, error) {
	c.evals++
	return train.Metrics{"evals": float64(c.evals)}, nil
}

func newToyLoop(t *testing.T, task train.Task, c train.Config, log io.Writer) *train.Loop {
	t.Helper()
	torch.ManualSeed(1)
	net, err := torch.NewLSTM(torch.LSTMConfig{Inputs: 1, Hidden: 4, Layers: 1, Horizon: 1}, torch.CPU)
	require.NoError(t, err)
	t.Cleanup(func() { net.Close() })
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.01})
	require.NoError(t, err)
	t.Cleanup(func() { opt.Close() })
	return &train.Loop{Net: net, Opt: opt, Task: task, Config: c, Log: log}
}

func TestLoopVisitsEverySampleOncePerEpoch(t *testing.T) {
	task := &countingTask{n: 23}
	c := train.Config{Epochs: 2, BatchSize: 5, LogEvery: 2, Seed: 9, Schedule: train.Schedule{Name: "constant", BaseLR: 0.01}}
	var log strings.Builder
	res, err := newToyLoop(t, task, c, &log).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 10, res.Steps)
	require.Len(t, res.Epochs, 2)
	assert.Equal(t, 2, task.evals, "one evaluation per epoch")
	for e := 0; e < 2; e++ {
		var seen []int
		for _, b := range task.batches[e*5 : (e+1)*5] {
			seen = append(seen, b...)
		}
		assert.Equal(t, train.Order(9, e, 23), seen, "epoch %d follows Order(seed, epoch)", e)
	}
	assert.Len(t, task.batches[4], 3, "the last batch is partial")
	assert.Contains(t, log.String(), "step 10/10")
	assert.Contains(t, log.String(), "epoch 2 done")
	assert.NotContains(t, log.String(), "\r", "no progress bar when not a terminal")
}

func TestLoopStopsAtMaxSteps(t *testing.T) {
	task := &countingTask{n: 50}
	c := train.Config{Epochs: 5, BatchSize: 10, MaxSteps: 12, LogEvery: 100, Schedule: train.Schedule{Name: "constant", BaseLR: 0.01}}
	res, err := newToyLoop(t, task, c, io.Discard).Run(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 12, res.Steps)
	assert.Len(t, task.batches, 12)
	assert.Len(t, res.Epochs, 3, "the third, cut-short epoch is still evaluated")
}

// cancelTask cancels the run's context while the loop asks for a batch.
type cancelTask struct {
	countingTask
	cancelAt int
	cancel   context.CancelFunc
}

func (c *cancelTask) Batch(idx []int) (torch.Host, torch.Host) {
	if len(c.batches) == c.cancelAt {
		c.cancel()
	}
	return c.countingTask.Batch(idx)
}

func TestLoopFinishesTheStepWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	task := &cancelTask{countingTask: countingTask{n: 100}, cancelAt: 3, cancel: cancel}
	c := train.Config{Epochs: 1, BatchSize: 10, LogEvery: 1, Schedule: train.Schedule{Name: "constant", BaseLR: 0.01}}
	res, err := newToyLoop(t, task, c, io.Discard).Run(ctx)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	assert.Equal(t, 4, res.Steps, "the step whose batch was being gathered when cancelled is finished")
	assert.Empty(t, res.Epochs)
}

func TestLoopProgressBarOnTerminal(t *testing.T) {
	task := &countingTask{n: 20}
	c := train.Config{Epochs: 1, BatchSize: 5, LogEvery: 1, Schedule: train.Schedule{Name: "constant", BaseLR: 0.01}}
	var log strings.Builder
	l := newToyLoop(t, task, c, &log)
	l.Terminal = true
	_, err := l.Run(context.Background())
	require.NoError(t, err)
	out := log.String()
	assert.Contains(t, out, "\r[")
	assert.Contains(t, out, "100% 4/4")
	assert.Contains(t, out, "steps/s")
	assert.Contains(t, out, "eta")
}
