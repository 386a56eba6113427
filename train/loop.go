// Package train owns the training loop: epochs, batches in an order derived from (seed, epoch),
// one cgo call per optimizer step, periodic and emergency checkpoints, an evaluation after every
// epoch, and the log.
//
// Guarantees: the order of samples in epoch e depends only on (seed, e), and the learning rate of a
// step only on the step's number, so a run taken up again at a checkpoint's (epoch, batch) position
// with the model, optimizer and RNG state restored performs exactly the steps an uninterrupted run
// would: on the CPU with a fixed thread count, the final weights are bitwise identical.
package train

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"spottrain/codes"
	"spottrain/events"
	"spottrain/torch"
)

// Task is a workload as the loop sees it: training samples it can batch, and an evaluation.
type Task interface {
	// TrainSize returns the number of training samples.
	TrainSize() int
	// Batch gathers the training samples idx into host tensors, valid until the next call.
	Batch(idx []int) (x, y torch.Host)
	// Evaluate scores net on the validation split: this process's shard of it, whose totals
	// shard.Sum adds up with the other processes'. It calls abandon before each of the shard's
	// Parts (on every rank as often) and returns ErrAbandoned as soon as abandon returns true.
	Evaluate(net *torch.Net, shard Shard, abandon func() bool) (Metrics, error)
}

// EpochStarter is a Task that prepares an epoch's batches ahead of the steps (in background
// goroutines) once it knows their order: the loop calls StartEpoch before the first Batch of every
// epoch, with the order of the samples this process trains on (in a group, its share of each
// batch, batch after batch) and the batch it starts from.
type EpochStarter interface {
	StartEpoch(epoch int, order []int, from int)
}

// A sharer is a Task whose batches the loop sizes: before each epoch, to this process's share of
// the global batch (the group's size may change between two runs of a loop).
type sharer interface{ setShare(n int) }

// Metrics are named scores of an evaluation, e.g. "mae_kw".
type Metrics map[string]float64

// Finite returns m without its non-finite values (an undefined score: a skill against a
// persistence RMSE of 0 is -Inf, an overflow gives NaN), which no JSON file can hold and no
// strategy can compare, and the names of those left out, each with the reason. m is unchanged;
// the first result is nil when m is.
func (m Metrics) Finite() (Metrics, map[string]string) {
	var absent map[string]string
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			if absent == nil {
				absent = map[string]string{}
			}
			absent[k] = fmt.Sprintf("%v is not a finite number: the score is undefined on this data", v)
		}
	}
	if absent == nil {
		return m, nil
	}
	kept := Metrics{}
	for k, v := range m {
		if _, out := absent[k]; !out {
			kept[k] = v
		}
	}
	return kept, absent
}

// warnAbsent logs one line for each metric that Finite left out, in name order.
func warnAbsent(w io.Writer, what string, absent map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(absent)) {
		fmt.Fprintf(w, "warning: %s metric %s left out: %s\n", what, k, absent[k])
	}
}

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

// Position is where a run stands: Step optimizer steps done, the next batch is Batch of Epoch.
// LossSum is the sum of the training losses of the Batch steps done in Epoch.
type Position struct {
	Epoch, Batch, Step int
	LossSum            float64
}

// EpochResult is what one epoch produced.
type EpochResult struct {
	Epoch     int
	Step      int     // optimizer steps done at the epoch's end
	TrainLoss float64 // mean training loss over the epoch's steps
	Val       Metrics
	Duration  time.Duration // of this process's part of the epoch
}

// Result is the outcome of a run.
type Result struct {
	Steps  int      // optimizer steps done, counting those of earlier incarnations
	End    Position // where the run stands
	Epochs []EpochResult
}

// Notice tells the loop to stop: a signal (SIGTERM, SIGINT, SIGHUP) or a cloud's preemption
// notice, and when it came.
type Notice struct {
	Signal os.Signal
	At     time.Time
}

// Checkpointer takes the loop's checkpoints.
type Checkpointer interface {
	// Due reports whether a periodic checkpoint is due after step.
	Due(step int) bool
	// Improved reports whether a milestone checkpoint is due after an evaluation that scored val.
	Improved(step int, val Metrics) bool
	// Save checkpoints the state at pos, with the newest validation metrics (nil before the first
	// evaluation). The snapshot blocks; a periodic or milestone save persists in the background,
	// others before Save returns.
	Save(pos Position, reason codes.CheckpointReason, metrics Metrics) error
}

// Loop trains Net with Opt on Task.
type Loop struct {
	Net         *torch.Net
	Opt         *torch.Optimizer
	Task        Task
	Config      Config
	Start       Position      // where to begin: the zero Position, or a checkpoint's
	Checkpoints Checkpointer  // nil: no checkpoints
	Events      *events.Log   // signal_received and epoch_end go here; nil: nowhere
	Stop        <-chan Notice // a notice ends the run after the step or evaluation batch in progress; nil: none
	Log         io.Writer     // log lines and progress
	Terminal    bool          // Log is a terminal: draw a progress bar instead of periodic lines
	// Pause, if set, is called after every step ("step"; in a group, not after the step at which
	// the group decided to stop) and before every evaluation batch
	// ("eval", "final-eval" for the evaluation after the run's last step). Only the test hooks
	// of the CLI set it, to hold a point open until a signal has landed there.
	Pause func(point string)
	// Samples, if set, is called before every step with the step's number, this process's rank in
	// its group and the group's size (0 of 1 alone), and the samples it trains on in the step (its
	// share of the global batch). Only the test hooks of the CLI set it, to check the order of
	// samples across resumes and regroupings.
	Samples func(step, rank, world int, idx []int)

	group *group // the process group this process trains in; nil: alone
	// joiners, on rank 0 of an elastic group, reports whether ranks ask to join it: the loop
	// then ends with errGrow after the next periodic checkpoint. nil: never.
	joiners func() bool
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

// Run trains from l.Start until the configured epochs or steps are done. On a notice it finishes
// the step in progress (or abandons the evaluation in progress after its current batch), writes
// an emergency checkpoint and returns a *PreemptedError; when ctx is cancelled it stops after the step in progress and returns ctx's error.
//
// Run keeps its goroutine on one OS thread: libtorch's OpenMP keeps a team of worker threads per
// calling thread, and a goroutine that wandered between threads would leave idle teams spinning
// on the same cores (slower and more variable steps: see docs/benchmarks.md).
func (l *Loop) Run(ctx context.Context) (*Result, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	c := l.Config
	n := l.Task.TrainSize()
	perEpoch := BatchesPerEpoch(n, c.BatchSize)
	total := TotalSteps(n, c)
	res := &Result{Steps: l.Start.Step, End: l.Start}
	prog := newProgress(l.Log, l.Terminal, total, l.Start.Step)
	defer prog.done()

	// The epoch of a start position inside it is evaluated even if no step is left: a checkpoint of
	// the run's last step (an emergency one) is taken before its epoch's evaluation.
	for epoch := l.Start.Epoch; epoch < c.Epochs && (res.Steps < total || epoch == l.Start.Epoch && l.Start.Batch > 0); epoch++ {
		start := time.Now()
		order := Order(c.Seed, epoch, n)
		pos := Position{Epoch: epoch, Step: res.Steps}
		if epoch == l.Start.Epoch {
			pos = l.Start
		}
		l.startEpoch(epoch, order, pos.Batch)
		for pos.Batch < perEpoch && res.Steps < total {
			// One optimizer step: gather the batch in Go, then a single call into libtorch.
			b := pos.Batch
			lr := c.Schedule.LR(res.Steps)
			agreed, err := l.step(order[b*c.BatchSize:min((b+1)*c.BatchSize, n)], lr, res.Steps+1)
			if err != nil {
				return res, fmt.Errorf("epoch %d batch %d: %w", epoch, b, err)
			}
			res.Steps++
			pos.Batch, pos.Step = b+1, res.Steps
			res.End = pos
			if agreed.notice == nil { // a group that decided to stop has no point to hold open
				l.pause("step")
			}

			// Stop? Checkpoint? A group decided within the step; a process alone, now. The loss
			// is read back (a device sync) only for a log line or a checkpoint.
			notice, due := agreed.notice, agreed.due
			if l.group == nil {
				notice, due = l.notice(), l.Checkpoints != nil && l.Checkpoints.Due(res.Steps)
			}
			if res.Steps%c.LogEvery == 0 || pos.Batch == perEpoch || res.Steps == total || due || notice != nil {
				if err := l.takeLoss(&pos, res, lr, prog); err != nil {
					return res, err
				}
			}

			// Checkpoints: the periodic one persists in the background; on a notice, the
			// emergency one is durable before we return.
			if notice != nil {
				prog.done()
				fmt.Fprintf(l.Log, "%s received: checkpointing at step %d\n", notice.Signal, res.Steps)
				return res, l.stop(notice, pos, res)
			}
			if due {
				if err := l.Checkpoints.Save(pos, codes.Periodic, res.lastMetrics()); err != nil {
					return res, err
				}
				if agreed.grow {
					return res, errGrow
				}
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}

		// Evaluation at the end of every epoch (also of one cut short by max_steps); a notice
		// abandons it (a resume from the emergency checkpoint evaluates the epoch again).
		er, notice, err := l.evaluate(pos, start, res.Steps == total)
		if notice != nil {
			prog.done()
			fmt.Fprintf(l.Log, "%s received during the evaluation of epoch %d: abandoning it, checkpointing at step %d\n",
				notice.Signal, epoch+1, res.Steps)
			return res, l.stop(notice, pos, res)
		}
		if err != nil {
			return res, err
		}
		res.Epochs = append(res.Epochs, er)
		prog.epoch(er)
		_, improved, err := l.group.agree(nil, l.Checkpoints != nil && l.Checkpoints.Improved(pos.Step, er.Val))
		if err != nil {
			return res, err
		}
		if improved[0] {
			// Taken after the evaluation: a resume from it starts the next epoch.
			at := pos
			if at.Batch == perEpoch {
				at = Position{Epoch: epoch + 1, Step: pos.Step}
			}
			if err := l.Checkpoints.Save(at, codes.Milestone, er.Val); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// startEpoch readies a Task that assembles its batches ahead (a sharer, an EpochStarter) for
// epoch, of the samples order, from batch from: its batches this process's share of the group's.
func (l *Loop) startEpoch(epoch int, order []int, from int) {
	if s, ok := l.Task.(sharer); ok {
		s.setShare(l.Config.BatchSize / l.group.world())
	}
	if es, ok := l.Task.(EpochStarter); ok {
		es.StartEpoch(epoch, l.group.rankOrder(order, l.Config.BatchSize), from)
	}
}

// decision is what a group decided in a step: the notice that stops it after the step (nil: none),
// whether a checkpoint of the step is due, and whether the group takes in new ranks after it.
type decision struct {
	notice    *Notice
	due, grow bool
}

// step trains on the batch of samples idx at learning rate lr: alone, on all of it; in a group,
// on this rank's share, and the group's gradients make every rank's step that of the whole batch.
// In a group the step also takes the group's decision for step (the step's number once done):
// this rank's notice, if one came, and rank 0's strategy on the checkpoint, as of the step's
// start.
func (l *Loop) step(idx []int, lr float64, step int) (decision, error) {
	clip := l.Config.GradClip
	if l.group == nil {
		l.samples(step, idx)
		x, y := l.Task.Batch(idx)
		return decision{}, l.Net.TrainStep(l.Opt, x, y, lr, clip)
	}
	notice := l.notice()
	due := l.Checkpoints != nil && l.Checkpoints.Due(step)
	flags := l.group.flags(notice, due, due && l.joiners != nil && l.joiners())
	var err error
	lo, hi := Share(len(idx), l.group.rank(), l.group.world())
	l.samples(step, idx[lo:hi])
	if lo == hi {
		err = l.Net.TrainShare(l.Opt, torch.Host{}, torch.Host{}, lr, clip, 0, flags)
	} else {
		x, y := l.Task.Batch(idx[lo:hi])
		err = l.Net.TrainShare(l.Opt, x, y, lr, clip, float64(hi-lo)/float64(len(idx)), flags)
	}
	if err != nil {
		return decision{}, l.group.lost("the training step", err)
	}
	notice, agreed := l.group.decisions(flags, notice)
	return decision{notice: notice, due: agreed[0], grow: agreed[1]}, nil
}

func (l *Loop) samples(step int, idx []int) {
	if l.Samples != nil {
		l.Samples(step, l.group.rank(), l.group.world(), idx)
	}
}

// takeLoss reads back the loss of the steps since the last read into pos (and res.End), and
// reports it: the progress, and the log's progress event every LogEvery steps.
func (l *Loop) takeLoss(pos *Position, res *Result, lr float64, prog *progress) error {
	loss, k, err := l.Net.TakeLoss()
	if err != nil {
		return err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return fmt.Errorf("training diverged: loss is %v at step %d (try a lower optimizer.lr or train.grad_clip)", loss, res.Steps)
	}
	pos.LossSum += loss * float64(k)
	res.End = *pos
	prog.step(res.Steps, pos.Epoch, loss, lr)
	if res.Steps%l.Config.LogEvery == 0 {
		l.emit(events.Progress{Step: res.Steps, Epoch: pos.Epoch, Loss: loss})
	}
	return nil
}

// evaluate scores the epoch that ends at pos (final: the run's last), and records it. A notice
// that comes before its last batch abandons it: evaluate returns that notice.
func (l *Loop) evaluate(pos Position, start time.Time, final bool) (EpochResult, *Notice, error) {
	point := "eval"
	if final {
		point = "final-eval"
	}
	shard, err := l.group.shard(l.Net)
	if err != nil {
		return EpochResult{}, nil, err
	}
	var notice *Notice
	var agreeErr error
	val, err := l.Task.Evaluate(l.Net, shard, func() bool {
		l.pause(point)
		notice, _, agreeErr = l.group.agree(l.notice())
		return notice != nil || agreeErr != nil
	})
	if agreeErr != nil {
		return EpochResult{}, nil, agreeErr
	}
	if notice != nil {
		return EpochResult{}, notice, nil
	}
	if err != nil {
		return EpochResult{}, nil, fmt.Errorf("evaluate epoch %d: %w", pos.Epoch+1, err)
	}
	val, absent := val.Finite()
	warnAbsent(l.Log, "validation", absent)
	er := EpochResult{Epoch: pos.Epoch, Step: pos.Step, TrainLoss: pos.LossSum / float64(max(pos.Batch, 1)), Val: val, Duration: time.Since(start)}
	l.emit(events.EpochEnd{Epoch: er.Epoch, Step: er.Step, TrainLoss: er.TrainLoss, Metrics: er.Val, Absent: absent})
	return er, nil, nil
}

// stop ends the run on notice, at pos: it records the notice and writes the emergency checkpoint
// (durable when stop returns), then returns the *PreemptedError that ends the run.
func (l *Loop) stop(notice *Notice, pos Position, res *Result) error {
	l.emit(events.SignalReceived{Signal: notice.Signal.String(), Step: res.Steps,
		WaitMS: time.Since(notice.At).Seconds() * 1000})
	if l.Checkpoints != nil {
		if err := l.Checkpoints.Save(pos, codes.Emergency, res.lastMetrics()); err != nil {
			return fmt.Errorf("emergency checkpoint: %w", err)
		}
	}
	return &PreemptedError{Notice: *notice, Step: res.Steps}
}

func (l *Loop) pause(point string) {
	if l.Pause != nil {
		l.Pause(point)
	}
}

func (l *Loop) emit(p events.Payload) {
	if l.Events != nil {
		l.Events.Emit(p)
	}
}

// lastMetrics returns the newest validation metrics, nil before the first evaluation.
func (r *Result) lastMetrics() Metrics {
	if len(r.Epochs) == 0 {
		return nil
	}
	return r.Epochs[len(r.Epochs)-1].Val
}

// notice returns a pending stop notice, without waiting.
func (l *Loop) notice() *Notice {
	select {
	case n, ok := <-l.Stop:
		if ok {
			return &n
		}
	default:
	}
	return nil
}
