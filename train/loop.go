// Package train owns the training loop: epochs, batches in an order derived from (seed, epoch),
// one cgo call per optimizer step, an evaluation after every epoch, and the log.
//
// Guarantees: the order of samples in epoch e depends only on (seed, e), and the learning rate of a
// step only on the step's number, so a run can be taken up again at any (epoch, batch) position and
// see exactly the batches and rates an uninterrupted run would.
package train

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"spottrain/torch"
)

// Task is a workload as the loop sees it: training samples it can batch, and an evaluation.
type Task interface {
	// TrainSize returns the number of training samples.
	TrainSize() int
	// Batch gathers the training samples idx into host tensors, valid until the next call.
	Batch(idx []int) (x, y torch.Host)
	// Evaluate scores net on the validation split.
	Evaluate(net *torch.Net) (Metrics, error)
}

// Metrics are named scores of an evaluation, e.g. "mae_kw".
type Metrics map[string]float64

// String formats the metrics as "name=value" pairs in name order.
func (m Metrics) String() string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = fmt.Sprintf("%s=%.4g", k, m[k])
	}
	return strings.Join(parts, " ")
}

// Config is what the loop needs to know of a run.
type Config struct {
	Epochs    int
	BatchSize int
	MaxSteps  int // stop after this many optimizer steps in all; 0 = no limit
	LogEvery  int // steps between log lines (and loss read-backs)
	GradClip  float64
	Seed      uint64 // data order
	Schedule  Schedule
}

// EpochResult is what one epoch produced.
type EpochResult struct {
	Epoch     int
	TrainLoss float64 // mean training loss over the epoch's steps
	Val       Metrics
	Duration  time.Duration
}

// Result is the outcome of a run.
type Result struct {
	Steps  int // optimizer steps taken
	Epochs []EpochResult
}

// Loop trains Net with Opt on Task.
type Loop struct {
	Net      *torch.Net
	Opt      *torch.Optimizer
	Task     Task
	Config   Config
	Log      io.Writer // log lines and progress
	Terminal bool      // Log is a terminal: draw a progress bar instead of periodic lines
}

// BatchesPerEpoch returns how many batches an epoch of n samples has (the last may be partial).
func BatchesPerEpoch(n, batchSize int) int { return (n + batchSize - 1) / batchSize }

// TotalSteps returns the number of optimizer steps a whole run takes.
func TotalSteps(n int, c Config) int {
	total := c.Epochs * BatchesPerEpoch(n, c.BatchSize)
	if c.MaxSteps > 0 && c.MaxSteps < total {
		total = c.MaxSteps
	}
	return total
}

// Order returns the permutation of n samples used in epoch: a Fisher-Yates shuffle driven by a
// PCG generator seeded with (seed, epoch), spelled out here so that it never changes with the Go
// version.
func Order(seed uint64, epoch, n int) []int {
	rng := rand.NewPCG(seed, uint64(epoch))
	perm := make([]int, n)
	for i := range perm {
		perm[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(rng.Uint64() % uint64(i+1))
		perm[i], perm[j] = perm[j], perm[i]
	}
	return perm
}

// Run trains until the configured epochs or steps are done, or ctx is cancelled: then it finishes
// the step in progress and returns what was done with ctx's error.
func (l *Loop) Run(ctx context.Context) (*Result, error) {
	c := l.Config
	n := l.Task.TrainSize()
	perEpoch := BatchesPerEpoch(n, c.BatchSize)
	total := TotalSteps(n, c)
	res := &Result{}
	prog := newProgress(l.Log, l.Terminal, total)

	for epoch := 0; epoch < c.Epochs && res.Steps < total; epoch++ {
		start := time.Now()
		order := Order(c.Seed, epoch, n)
		var epochLoss float64
		var epochSteps int64
		for b := 0; b < perEpoch && res.Steps < total; b++ {
			// One optimizer step: gather the batch in Go, then a single call into libtorch.
			idx := order[b*c.BatchSize : min((b+1)*c.BatchSize, n)]
			x, y := l.Task.Batch(idx)
			lr := c.Schedule.LR(res.Steps)
			if err := l.Net.TrainStep(l.Opt, x, y, lr, c.GradClip); err != nil {
				return res, fmt.Errorf("epoch %d batch %d: %w", epoch, b, err)
			}
			res.Steps++

			last := b == perEpoch-1 || res.Steps == total
			if res.Steps%c.LogEvery == 0 || last {
				loss, k, err := l.Net.TakeLoss() // waits for the device: only every LogEvery steps
				if err != nil {
					return res, err
				}
				epochLoss += loss * float64(k)
				epochSteps += k
				prog.step(res.Steps, epoch, loss, lr)
			}
			if err := ctx.Err(); err != nil {
				prog.done()
				return res, err
			}
		}

		// Evaluation at the end of every epoch.
		val, err := l.Task.Evaluate(l.Net)
		if err != nil {
			return res, fmt.Errorf("evaluate epoch %d: %w", epoch, err)
		}
		er := EpochResult{Epoch: epoch, TrainLoss: epochLoss / float64(max(epochSteps, 1)), Val: val, Duration: time.Since(start)}
		res.Epochs = append(res.Epochs, er)
		prog.epoch(er)
	}
	prog.done()
	return res, nil
}
