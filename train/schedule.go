package train

import (
	"fmt"
	"math"
)

// Schedule gives the learning rate of every optimizer step. It is a pure function of the step, so
// a resumed run gets exactly the rates an uninterrupted one would.
type Schedule struct {
	Name     string  // "constant", "step", "cosine" or "onecycle"
	BaseLR   float64 // the rate after warmup (the peak)
	Warmup   int     // steps of linear warmup from BaseLR/Warmup up to BaseLR ("onecycle": of cosine warmup from BaseLR/25)
	StepSize int     // "step": multiply by Gamma every StepSize steps after warmup
	Gamma    float64
	MinLR    float64 // "cosine", "onecycle": the floor reached at the last step
	Total    int     // "cosine", "onecycle": the number of steps of the whole run
}

// Validate reports a schedule that LR cannot evaluate.
func (s Schedule) Validate() error {
	switch s.Name {
	case "constant":
	case "step":
		if s.StepSize < 1 {
			return fmt.Errorf("step schedule: step size must be >= 1, got %d", s.StepSize)
		}
	case "cosine", "onecycle":
		if s.Total < 1 {
			return fmt.Errorf("%s schedule: total steps must be >= 1, got %d", s.Name, s.Total)
		}
	default:
		return fmt.Errorf("unknown schedule %q (want constant, step, cosine or onecycle)", s.Name)
	}
	return nil
}

// LR returns the learning rate of step (0-based: the first optimizer step is step 0).
//
// "onecycle" is PyTorch's OneCycleLR with cosine annealing: from BaseLR/25 up to BaseLR over the
// Warmup steps, then down to MinLR at the last step.
func (s Schedule) LR(step int) float64 {
	if s.Name == "onecycle" && step < s.Warmup {
		start := s.BaseLR / 25
		return cosine(start, s.BaseLR, float64(step)/float64(max(s.Warmup, 1)))
	}
	if step < s.Warmup {
		return s.BaseLR * float64(step+1) / float64(s.Warmup)
	}
	after := step - s.Warmup
	switch s.Name {
	case "step":
		return s.BaseLR * math.Pow(s.Gamma, float64(after/s.StepSize))
	case "cosine", "onecycle":
		span := s.Total - s.Warmup
		p := 1.0
		if span > 1 {
			p = math.Min(1, float64(after)/float64(span-1))
		}
		return cosine(s.BaseLR, s.MinLR, p)
	default:
		return s.BaseLR
	}
}

// cosine goes from a (p = 0) to b (p = 1) along half a cosine wave.
func cosine(a, b, p float64) float64 { return b + (a-b)*0.5*(1+math.Cos(math.Pi*p)) }
