package solar

import (
	"math"
	"time"
)

// Forecasters are what Scores scores: the model, then each baseline (by its Baseline index + 1).
const (
	Model          = 0
	NumForecasters = 1 + NumBaselines
)

// ForecasterName names forecaster f of Scores: "model" or a baseline's name.
func ForecasterName(f int) string {
	if f == Model {
		return "model"
	}
	return BaselineNames[f-1]
}

// Errors sums a forecast's errors over some hours, in kW.
type Errors struct {
	N, Abs, Sq, Bias float64
}

// MAE is the mean absolute error, RMSE the root mean squared error and MBE the mean bias error
// (forecast minus actual), in kW; all NaN over no hours.
func (e Errors) MAE() float64  { return e.Abs / e.N }
func (e Errors) RMSE() float64 { return math.Sqrt(e.Sq / e.N) }
func (e Errors) MBE() float64  { return e.Bias / e.N }

// Skill is 1 - RMSE/RMSE_ref: above 0 the forecast beats ref, 1 is perfect.
func (e Errors) Skill(ref Errors) float64 { return 1 - e.RMSE()/ref.RMSE() }

// Scores sums the errors of the model and every baseline over the scored hours of windows
// (daylight, measured), overall, per horizon step, per UTC hour of day and per month of the target
// hour. Its sums are one flat slice (Sums), so that ranks holding parts of the windows can add them
// up.
type Scores struct {
	CapacityKW float64
	Horizon    int
	sums       []float64 // [forecaster][group][N, Abs, Sq, Bias]
}

// Groups of hours in Scores: all of them, then per horizon step, hour of day and month.
func (s *Scores) groups() int { return 1 + s.Horizon + 24 + 12 }

// NewScores returns empty scores for a plant of capacityKW and windows of horizon hours.
func NewScores(capacityKW float64, horizon int) *Scores {
	s := &Scores{CapacityKW: capacityKW, Horizon: horizon}
	s.sums = make([]float64, NumForecasters*s.groups()*4)
	return s
}

// Sums returns the sums themselves (not a copy): adding another Scores' sums into it adds their
// hours.
func (s *Scores) Sums() []float64 { return s.sums }

// Add adds the scored hours of window i of w; model holds the model's forecast of each of its
// target hours, kW.
func (s *Scores) Add(w *Windows, i int, model []float64) {
	for j := range w.Horizon {
		at := i*w.Horizon + j
		if !w.Scored[at] {
			continue
		}
		t := w.TargetStart[i].Add(time.Duration(j) * time.Hour).UTC()
		groups := [4]int{0, 1 + j, 1 + s.Horizon + t.Hour(), 1 + s.Horizon + 24 + int(t.Month()-1)}
		for f := range NumForecasters {
			pred := model[j]
			if f != Model {
				pred = w.Baselines[f-1][at]
			}
			d := pred - w.Actual[at]
			for _, g := range groups {
				e := s.sums[(f*s.groups()+g)*4:]
				e[0]++
				e[1] += math.Abs(d)
				e[2] += d * d
				e[3] += d
			}
		}
	}
}

func (s *Scores) errors(f, g int) Errors {
	e := s.sums[(f*s.groups()+g)*4:]
	return Errors{N: e[0], Abs: e[1], Sq: e[2], Bias: e[3]}
}

// All returns forecaster f's errors over every scored hour.
func (s *Scores) All(f int) Errors { return s.errors(f, 0) }

// ByHorizon returns forecaster f's errors at horizon step j (0: the first target hour).
func (s *Scores) ByHorizon(f, j int) Errors { return s.errors(f, 1+j) }

// ByHour returns forecaster f's errors at UTC hour of day hour.
func (s *Scores) ByHour(f, hour int) Errors { return s.errors(f, 1+s.Horizon+hour) }

// ByMonth returns forecaster f's errors in month (1 = January).
func (s *Scores) ByMonth(f, month int) Errors { return s.errors(f, 1+s.Horizon+24+month-1) }
