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
}

// Schedule draws Interrupts from a Pattern; not safe for concurrent use.
type Schedule struct {
	gap    func() time.Duration
	notice *rand.Rand
	share  float64
	at     time.Duration
}

// NewSchedule returns the interrupts of p seeded by seed, each without notice with probability
// noNoticeShare.
func NewSchedule(p Pattern, seed uint64, noNoticeShare float64) (*Schedule, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := checkShare(noNoticeShare); err != nil {
		return nil, err
	}
	return &Schedule{
		gap:    p.Gaps(rand.New(rand.NewPCG(seed, 1))),
		notice: rand.New(rand.NewPCG(seed, 2)),
		share:  noNoticeShare,
	}, nil
}

// Next returns the next interrupt.
func (s *Schedule) Next() Interrupt {
	s.at += s.gap()
	return Interrupt{At: s.at, Notice: s.notice.Float64() >= s.share}
}
