package checkpoint

import (
	"fmt"
	"math"
	"time"
)

// Strategy decides when the training loop takes periodic checkpoints. The loop calls Start once
// when training (re)starts, Interrupted for each earlier interruption of the run (before Start,
// from the run's event log, oldest first), Due after every optimizer step, Checkpointed after
// each checkpoint it took (any reason, emergency ones included), and Validated after each
// evaluation. An emergency checkpoint on SIGTERM is the loop's business, whatever the strategy.
//
// Strategies never read the clock: every time is an argument, the wall-clock time of the trainer
// process. Not safe for concurrent use.
type Strategy interface {
	// Name is "fixed", "adaptive" or "milestone".
	Name() string
	// Start is called once, when this incarnation's training begins.
	Start(now time.Time)
	// Interrupted reports that an earlier incarnation ran uptime of training and was interrupted;
	// notice says that it got to write an emergency checkpoint, so that the interruption cost no
	// work.
	Interrupted(uptime time.Duration, notice bool)
	// Due reports, after the optimizer step step, whether to take a periodic checkpoint now.
	Due(step int, now time.Time) bool
	// Checkpointed reports a checkpoint of step, which blocked training for blocking; now is when
	// training went on after it, where the time to the next periodic checkpoint starts.
	Checkpointed(step int, now time.Time, blocking time.Duration)
	// Validated reports the strategy's metric after an evaluation at step; true: checkpoint now.
	Validated(step int, metric float64) bool
}

// BestSeeder is implemented by strategies that track the best metric value (Milestone). A loop
// that resumes from a checkpoint calls SeedBest with the best value seen before the interruption
// (for example from the checkpoint's manifest), so that a worse value after the resume is not
// taken for an improvement.
type BestSeeder interface {
	SeedBest(metric float64)
}

// Names of the strategies (StrategyConfig.Name, Strategy.Name).
const (
	StrategyFixed     = "fixed"
	StrategyAdaptive  = "adaptive"
	StrategyMilestone = "milestone"
)

// StrategyConfig selects and configures a Strategy. Fields that do not apply to the selected
// strategy are ignored. NewStrategy trusts the values: they are the checkpoint section of a
// spottrain config, which configs validates (with the file, line and key of a bad one), in spot
// seconds; the trainer passes them as wall durations. The keys are noted below.
type StrategyConfig struct {
	Name       string        // strategy: fixed | adaptive | milestone
	EverySteps int           // every_steps (fixed): every N optimizer steps; 0 = off
	Every      time.Duration // every_seconds (fixed): every T of training; 0 = off
	Min        time.Duration // min_seconds (adaptive): shortest interval, > 0
	Max        time.Duration // max_seconds (adaptive): longest interval, >= Min
	PriorMTBI  time.Duration // prior_mtbi_seconds (adaptive): MTBI before any is observed, > 0
	EMA        float64       // ema (adaptive): weight of a new observation in the averages, (0, 1]
	Mode       string        // mode (milestone): max when larger is better, else smaller is
}

// NewStrategy returns the strategy c names: a *Fixed, an *Adaptive or a *Milestone. It panics
// when c.Name is none of them (configs has validated it).
func NewStrategy(c StrategyConfig) Strategy {
	switch c.Name {
	case StrategyFixed:
		return &Fixed{everySteps: c.EverySteps, every: c.Every, lastStep: -1}
	case StrategyAdaptive:
		return &Adaptive{min: c.Min, max: c.Max, alpha: c.EMA, m: c.PriorMTBI.Seconds(), lastStep: -1}
	case StrategyMilestone:
		return &Milestone{max: c.Mode == "max"}
	default:
		panic(fmt.Sprintf("checkpoint: unknown strategy %q", c.Name))
	}
}

// Fixed is the fixed strategy: a checkpoint is due after every step that is a multiple of
// EverySteps (if set), and when at least Every (if set) has passed since the last checkpoint, or
// since Start before any. With neither set it is never due: the run is checkpointed only on a
// preemption notice and at its end. It is never due twice for the same step: not for the step of the last
// checkpoint, nor again for a step it already said was due.
type Fixed struct {
	everySteps int
	every      time.Duration
	start      time.Time
	last       time.Time // of the last checkpoint; zero: none since Start
	lastStep   int       // of the last checkpoint or the last step found due; -1: none
}

// Name implements Strategy.
func (f *Fixed) Name() string { return StrategyFixed }

// Start implements Strategy.
func (f *Fixed) Start(now time.Time) { f.start = now }

// Interrupted implements Strategy; Fixed ignores interruptions.
func (f *Fixed) Interrupted(time.Duration, bool) {}

// Due implements Strategy.
func (f *Fixed) Due(step int, now time.Time) bool {
	if step == f.lastStep {
		return false
	}
	due := f.everySteps > 0 && step%f.everySteps == 0 ||
		f.every > 0 && now.Sub(since(f.last, f.start)) >= f.every
	if due {
		f.lastStep = step
	}
	return due
}

// Checkpointed implements Strategy.
func (f *Fixed) Checkpointed(step int, now time.Time, _ time.Duration) {
	f.lastStep, f.last = step, now
}

// Validated implements Strategy; it is always false.
func (f *Fixed) Validated(int, float64) bool { return false }

// Adaptive is the adaptive strategy: it checkpoints at the interval that minimizes the expected
// lost time given the blocking cost C of a checkpoint and the mean time M between interruptions
// that lose work, Daly's higher-order optimum (see DalyInterval), clamped to [Min, Max].
//
// C is an exponential moving average of the blocking times reported by Checkpointed, seeded by
// the first one; before any, C is unknown and the interval is Min. M is an exponential moving
// average of the times between interruptions without notice, seeded by the first one; before
// any, M is PriorMTBI. An interruption with notice costs no work (its emergency checkpoint holds
// everything), so it is no interruption for M: its uptime is carried over and added to the next
// interruption without notice, since that is the time between two interruptions that do lose
// work. Finally the time since the last interruption without notice (the carried uptime plus this
// incarnation's uptime since Start, usually just the latter) is a lower bound on the current time
// between interruptions, and M is taken as the larger of the average and that bound, so that a
// pessimistic estimate is corrected while a long-lived incarnation runs.
//
// A checkpoint is due when the interval has passed since the last checkpoint, or since Start
// before any; never twice for the same step.
type Adaptive struct {
	min, max time.Duration
	alpha    float64

	c, m    float64 // estimates in seconds
	hasC    bool    // c comes from a measurement
	hasM    bool    // m comes from an observation, not the prior
	carried float64 // uptime in seconds of interruptions with notice since the last without

	start    time.Time
	last     time.Time // of the last checkpoint; zero: none since Start
	lastStep int       // of the last checkpoint or the last step found due; -1: none
}

// Name implements Strategy.
func (a *Adaptive) Name() string { return StrategyAdaptive }

// Start implements Strategy.
func (a *Adaptive) Start(now time.Time) { a.start = now }

// Interrupted implements Strategy. Negative uptimes count as zero.
func (a *Adaptive) Interrupted(uptime time.Duration, notice bool) {
	a.carried += max(uptime, 0).Seconds()
	if notice {
		return
	}
	a.m = a.ema(a.m, a.carried, a.hasM)
	a.hasM, a.carried = true, 0
}

// Due implements Strategy.
func (a *Adaptive) Due(step int, now time.Time) bool {
	if step == a.lastStep {
		return false
	}
	due := now.Sub(since(a.last, a.start)) >= a.Interval(now)
	if due {
		a.lastStep = step
	}
	return due
}

// Checkpointed implements Strategy. Negative blocking times count as zero.
func (a *Adaptive) Checkpointed(step int, now time.Time, blocking time.Duration) {
	a.lastStep, a.last = step, now
	a.c = a.ema(a.c, max(blocking, 0).Seconds(), a.hasC)
	a.hasC = true
}

// Validated implements Strategy; it is always false.
func (a *Adaptive) Validated(int, float64) bool { return false }

// Interval returns the current checkpoint interval at now: Min before any blocking time was
// measured, else DalyInterval of the estimates at now, clamped to [Min, Max].
func (a *Adaptive) Interval(now time.Time) time.Duration {
	if !a.hasC {
		return a.min
	}
	c, m := a.estimates(now)
	return min(max(duration(dalyInterval(c, m)), a.min), a.max)
}

// Estimates returns the current estimates at now of the blocking cost C of a checkpoint (0 before
// any was measured) and of the mean time M between interruptions without notice, the larger of
// its moving average and the time since the last such interruption (see Adaptive).
func (a *Adaptive) Estimates(now time.Time) (c, m time.Duration) {
	cs, ms := a.estimates(now)
	return duration(cs), duration(ms)
}

func (a *Adaptive) estimates(now time.Time) (c, m float64) {
	if a.hasC {
		c = a.c
	}
	uptime := 0.0
	if !a.start.IsZero() {
		uptime = max(now.Sub(a.start).Seconds(), 0)
	}
	return c, max(a.m, a.carried+uptime)
}

func (a *Adaptive) ema(avg, x float64, seeded bool) float64 {
	if !seeded {
		return x
	}
	return a.alpha*x + (1-a.alpha)*avg
}

// YoungInterval is Young's first-order optimum checkpoint interval, sqrt(2CM), for a checkpoint
// cost c and a mean time between interruptions m (J. W. Young, "A first order approximation to
// the optimum checkpoint interval", CACM 1974). Negative arguments count as zero.
func YoungInterval(c, m time.Duration) time.Duration {
	return duration(math.Sqrt(2 * max(c, 0).Seconds() * max(m, 0).Seconds()))
}

// DalyInterval is Daly's higher-order optimum checkpoint interval for a checkpoint cost c and a
// mean time between interruptions m (J. T. Daly, "A higher order estimate of the optimum
// checkpoint interval for restart dumps", FGCS 2006): for c < 2m,
//
//	sqrt(2cm) * (1 + sqrt(c/2m)/3 + (c/2m)/9) - c
//
// and m otherwise. The interval is the compute time between the end of one checkpoint and the
// start of the next. Negative arguments count as zero.
func DalyInterval(c, m time.Duration) time.Duration {
	return duration(dalyInterval(max(c, 0).Seconds(), max(m, 0).Seconds()))
}

// dalyInterval is DalyInterval in seconds, for c, m >= 0.
func dalyInterval(c, m float64) float64 {
	if c >= 2*m {
		return m
	}
	r := c / (2 * m)
	return math.Max(math.Sqrt(2*c*m)*(1+math.Sqrt(r)/3+r/9)-c, 0)
}

// Milestone is the milestone strategy: Due is always false, and Validated is true when the metric
// is strictly better (smaller in mode min, larger in mode max) than the best value seen so far by
// this process or given to SeedBest. Only finite values count: NaN and infinities never improve
// and never become the best; the first finite value always improves unless SeedBest gave one.
type Milestone struct {
	max     bool // mode max: larger is better
	best    float64
	hasBest bool
}

// Name implements Strategy.
func (s *Milestone) Name() string { return StrategyMilestone }

// Start implements Strategy; Milestone ignores it.
func (s *Milestone) Start(time.Time) {}

// Interrupted implements Strategy; Milestone ignores interruptions.
func (s *Milestone) Interrupted(time.Duration, bool) {}

// Due implements Strategy; it is always false.
func (s *Milestone) Due(int, time.Time) bool { return false }

// Checkpointed implements Strategy; Milestone ignores it.
func (s *Milestone) Checkpointed(int, time.Time, time.Duration) {}

// Validated implements Strategy: true when metric improves on the best value, which it becomes.
func (s *Milestone) Validated(_ int, metric float64) bool {
	if !s.better(metric) {
		return false
	}
	s.best, s.hasBest = metric, true
	return true
}

// SeedBest implements BestSeeder: metric, the best value of a resumed run, becomes the best value
// unless the current one is at least as good. It does not count as an improvement; non-finite
// values are ignored.
func (s *Milestone) SeedBest(metric float64) {
	if s.better(metric) {
		s.best, s.hasBest = metric, true
	}
}

// Best returns the best value so far and whether there is one.
func (s *Milestone) Best() (float64, bool) { return s.best, s.hasBest }

func (s *Milestone) better(metric float64) bool {
	switch {
	case math.IsNaN(metric) || math.IsInf(metric, 0):
		return false
	case !s.hasBest:
		return true
	case s.max:
		return metric > s.best
	default:
		return metric < s.best
	}
}

// since returns last, or start when last is zero.
func since(last, start time.Time) time.Time {
	if last.IsZero() {
		return start
	}
	return last
}

// duration converts seconds to a Duration, saturating at the largest one.
func duration(s float64) time.Duration {
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s * float64(time.Second))
}
