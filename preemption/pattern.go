package preemption

import (
	"math"
	"math/rand/v2"
	"time"
)

// Pattern yields the gaps, in spot time, between successive interrupts.
type Pattern interface {
	// Validate reports a bad parameter as a *FieldError naming its key in Config.
	Validate() error
	// Gaps returns a generator of successive gaps drawing only from r.
	Gaps(r *rand.Rand) func() time.Duration
}

// Regular interrupts every Every, each gap stretched by a uniform factor in [1-Jitter, 1+Jitter].
type Regular struct {
	Every  time.Duration
	Jitter float64 // in [0, 1)
}

func (p Regular) Validate() error {
	if p.Every <= 0 {
		return fieldErr("every", "must be positive, got %s", p.Every)
	}
	if !(p.Jitter >= 0 && p.Jitter < 1) {
		return fieldErr("jitter", "must be in [0, 1), got %g", p.Jitter)
	}
	return nil
}

func (p Regular) Gaps(r *rand.Rand) func() time.Duration {
	return func() time.Duration {
		if p.Jitter == 0 {
			return p.Every
		}
		return time.Duration(float64(p.Every) * (1 + p.Jitter*(2*r.Float64()-1)))
	}
}

// Poisson interrupts at Rate per hour with exponential gaps.
type Poisson struct {
	Rate float64 // interrupts per hour
}

func (p Poisson) Validate() error { return positiveRate("rate_per_hour", p.Rate) }

func (p Poisson) Gaps(r *rand.Rand) func() time.Duration {
	return func() time.Duration { return hours(r.ExpFloat64() / p.Rate) }
}

// Bursty is a two-state Markov-modulated Poisson process: quiet phases with interrupts at
// QuietRate per hour alternate with storms at StormRate per hour; phase lengths are exponential
// with means QuietMean and StormMean. It starts in a quiet phase.
type Bursty struct {
	QuietRate, StormRate float64 // interrupts per hour; QuietRate may be 0
	QuietMean, StormMean time.Duration
}

func (p Bursty) Validate() error {
	if !(p.QuietRate >= 0 && !math.IsInf(p.QuietRate, 0)) {
		return fieldErr("quiet_rate_per_hour", "must be finite and >= 0, got %g", p.QuietRate)
	}
	if err := positiveRate("storm_rate_per_hour", p.StormRate); err != nil {
		return err
	}
	if p.QuietMean <= 0 {
		return fieldErr("quiet_mean", "must be positive, got %s", p.QuietMean)
	}
	if p.StormMean <= 0 {
		return fieldErr("storm_mean", "must be positive, got %s", p.StormMean)
	}
	return nil
}

func (p Bursty) Gaps(r *rand.Rand) func() time.Duration {
	storm := false
	left := r.ExpFloat64() * p.QuietMean.Hours() // hours left in the current phase
	return func() time.Duration {
		var gap float64 // hours
		for {
			rate := p.QuietRate
			if storm {
				rate = p.StormRate
			}
			// Exponential gaps are memoryless, so a candidate drawn afresh in each phase is exact.
			if rate > 0 {
				if e := r.ExpFloat64() / rate; e < left {
					left -= e
					return hours(gap + e)
				}
			}
			gap += left
			storm = !storm
			mean := p.QuietMean
			if storm {
				mean = p.StormMean
			}
			left = r.ExpFloat64() * mean.Hours()
		}
	}
}

func positiveRate(key string, rate float64) error {
	if !(rate > 0 && !math.IsInf(rate, 0)) {
		return fieldErr(key, "must be a positive number of interrupts per hour, got %g", rate)
	}
	return nil
}

func hours(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }

// Interrupt is one drawn interrupt.
type Interrupt struct {
	At     time.Duration // spot time since the start: the sum of the gaps so far
	Notice bool          // SIGTERM then SIGKILL after the grace period; false: SIGKILL at once
	// Machine is the simulated machine of the job it hits, 0 to machines-1 (see NewJobSchedule).
	Machine int
}

// Schedule draws the Interrupts of a job of one or more machines from a Pattern; not safe for
// concurrent use.
type Schedule struct {
	machines []*stream
}

// stream is one machine's interrupts, with the next one drawn ahead.
type stream struct {
	gap    func() time.Duration
	notice *rand.Rand
	share  float64
	next   Interrupt
}

// NewSchedule returns the interrupts of p seeded by seed, each without notice with probability
// noNoticeShare: NewJobSchedule of one machine.
func NewSchedule(p Pattern, seed uint64, noNoticeShare float64) (*Schedule, error) {
	return NewJobSchedule(p, seed, noNoticeShare, 1)
}

// NewJobSchedule returns the interrupts of a job of machines machines (>= 1), each machine
// interrupted independently by p: machine m draws its gaps from PCG(seed, 2m+1) and its notices
// from PCG(seed, 2m+2), so machine 0 draws what NewSchedule draws, and a machine's draws do not
// depend on how many machines there are. Next merges the machines' streams, earliest first.
func NewJobSchedule(p Pattern, seed uint64, noNoticeShare float64, machines int) (*Schedule, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkShare(noNoticeShare); err != nil {
		return nil, err
	}
	if err := checkMachines(machines); err != nil {
		return nil, err
	}
	s := &Schedule{}
	for m := range machines {
		k := 2 * uint64(m)
		st := &stream{gap: p.Gaps(rand.New(rand.NewPCG(seed, k+1))), notice: rand.New(rand.NewPCG(seed, k+2)), share: noNoticeShare}
		st.draw(m)
		s.machines = append(s.machines, st)
	}
	return s, nil
}

// draw draws the stream's next interrupt, of machine m.
func (st *stream) draw(m int) {
	at := st.next.At + st.gap()
	st.next = Interrupt{At: at, Notice: st.notice.Float64() >= st.share, Machine: m}
}

// Machines is the number of machines the schedule interrupts.
func (s *Schedule) Machines() int { return len(s.machines) }

// Next returns the job's next interrupt: the earliest of its machines' next ones. Machines
// interrupted at the same instant are one interrupt of the job, that of the lowest machine: the
// others' draws at that instant are used up with it.
func (s *Schedule) Next() Interrupt {
	first := s.machines[0]
	for _, st := range s.machines[1:] {
		if st.next.At < first.next.At {
			first = st
		}
	}
	it := first.next
	for m, st := range s.machines {
		if st.next.At == it.At {
			st.draw(m)
		}
	}
	return it
}
