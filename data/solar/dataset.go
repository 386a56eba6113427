package solar

import (
	"fmt"
	"math"
	"time"
)

// WindowConfig describes how a series is cut into forecasting windows.
type WindowConfig struct {
	Lookback int // hours of input per window (L), >= 24 so the day-ahead persistence baseline is an input
	Horizon  int // hours forecast per window (H), in [1, 24]
	// TrainFrac and ValFrac are the chronological shares of the series'
	// hours for training and validation, each > 0 with a sum < 1; the rest
	// is the test split.
	TrainFrac, ValFrac float64
}

// DefaultWindowConfig returns 48 hours of lookback, a 24-hour horizon and a
// 70/15/15 split.
func DefaultWindowConfig() WindowConfig {
	return WindowConfig{Lookback: 48, Horizon: 24, TrainFrac: 0.7, ValFrac: 0.15}
}

// Validate returns a *ConfigError naming the first invalid field, or nil.
func (wc WindowConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: "WindowConfig." + field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case wc.Lookback < 24:
		return bad("Lookback", "must be >= 24 hours (the day-ahead persistence baseline reads the input), got %d", wc.Lookback)
	case wc.Horizon < 1 || wc.Horizon > 24:
		return bad("Horizon", "must be in [1, 24] hours (the persistence baseline looks one day back), got %d", wc.Horizon)
	case !(wc.TrainFrac > 0 && wc.TrainFrac < 1):
		return bad("TrainFrac", "must be in (0, 1), got %v", wc.TrainFrac)
	case !(wc.ValFrac > 0 && wc.ValFrac < 1):
		return bad("ValFrac", "must be in (0, 1), got %v", wc.ValFrac)
	case !(wc.TrainFrac+wc.ValFrac < 1):
		return bad("ValFrac", "TrainFrac + ValFrac must be < 1 to leave a test split, got %v + %v", wc.TrainFrac, wc.ValFrac)
	}
	return nil
}

// splitEpsilon guards the split arithmetic against rounding (0.29*100 is
// 28.999999999999996 in float64).
const splitEpsilon = 1e-9

// splitPoints returns the end (exclusive) hour indices of the train and
// validation splits: floor(T·TrainFrac) train hours, then floor(T·ValFrac)
// validation hours. Both counts grow with T; the test split (the rest)
// always has at least T·(1-TrainFrac-ValFrac) hours.
func splitPoints(total int, wc WindowConfig) (trainEnd, valEnd int) {
	t := float64(total)
	trainEnd = int(math.Floor(t*wc.TrainFrac + splitEpsilon))
	return trainEnd, trainEnd + int(math.Floor(t*wc.ValFrac+splitEpsilon))
}

// fits reports whether a series of total hours gives every split at least
// one window.
func fits(total int, wc WindowConfig) bool {
	span := wc.Lookback + wc.Horizon
	trainEnd, valEnd := splitPoints(total, wc)
	return trainEnd >= span && valEnd-trainEnd >= span && total-valEnd >= span
}

// MinHours returns the least N such that every series of N or more hours
// fits wc.
func MinHours(wc WindowConfig) int {
	span := float64(wc.Lookback + wc.Horizon)
	// From here on the split sizes, bounded below as in splitPoints, all
	// reach span.
	n := int(math.Ceil(max(span/wc.TrainFrac, span/wc.ValFrac, span/(1-wc.TrainFrac-wc.ValFrac)))) + 2
	for fits(n-1, wc) {
		n--
	}
	return n
}

// The baselines a forecaster is scored against, in Windows.Baselines.
const (
	BaselinePersistence      = iota // the power of the same hour a day earlier
	BaselineSmartPersistence        // the newest measured clear-sky index carried forward (see Preprocessing)
	BaselineClimatology             // the training split's mean clear-sky index of the month and hour
	BaselineCLIPER                  // ρ·smart persistence + (1-ρ)·climatology, in clear-sky index
	NumBaselines
)

// BaselineNames names the baselines, by index, as metrics and tables do.
var BaselineNames = [NumBaselines]string{"persistence", "smart_persistence", "climatology", "cliper"}

// Windows holds the windows of one split, flattened row-major for a single copy into a tensor.
// Window w forecasts the Horizon hours from TargetStart[w] from the Lookback hours before it;
// consecutive windows start one hour apart. Per target hour ([N][Horizon] arrays) it holds the
// truth, the clear-sky power, whether the hour is scored, and the baselines' forecasts.
type Windows struct {
	N, Steps, Horizon, Features int

	X []float32 // normalised inputs, [N][Steps][Features], features in Preprocessing.Features order
	// Y is what training compares with, [N][3][Horizon] per window: a scale a, an offset b and a
	// target c, all fractions of capacity, such that a·output + b is the forecast power (before
	// clamping) and c the measured power; a = b = c = 0 on estimated hours.
	Y           []float32
	Actual      []float64 // measured power, kW
	ClearSky    []float64 // clear-sky power, kW
	Scored      []bool    // daylight and measured: the hours every score is taken over
	CLIPERIndex []float64 // CLIPER's clear-sky index
	Baselines   [NumBaselines][]float64
	TargetStart []time.Time // [N]: time of each window's first target hour
	prep        *Preprocessing
}

// ForecastKW turns the forecaster's output o for target hour j of window i into kW: 0 at night,
// never negative nor above capacity.
func (w *Windows) ForecastKW(i, j int, o float32) float64 {
	k := i*w.Horizon + j
	return w.prep.toKW(o, w.ClearSky[k], w.CLIPERIndex[k])
}

// Dataset is a series cut into chronological train, validation and test windows by one
// Preprocessing fitted on the training hours.
type Dataset struct {
	Train, Val, Test *Windows
	Prep             *Preprocessing
}

// MakeDataset validates s and wc, fits the Preprocessing of mi on the training hours and cuts each
// split into windows with a stride of one hour.
//
// Splits of a series of T hours: the first floor(T·TrainFrac) hours train, the next
// floor(T·ValFrac) validate, the rest test; a window lies wholly inside one split, so no input or
// target is shared across splits. Each split needs at least Lookback+Horizon hours; otherwise
// MakeDataset returns an error saying how many hours suffice (the least N such that any series of
// N or more hours works). The series must know its site (Series.Site): the clear-sky model needs it.
func MakeDataset(s *Series, wc WindowConfig, mi ModelInputs) (*Dataset, error) {
	if err := wc.Validate(); err != nil {
		return nil, err
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	total := s.Len()
	if !fits(total, wc) {
		return nil, fmt.Errorf("series %q has %d hours, too short for windows of %d + %d hours (lookback + horizon) in each of the train/val/test splits (%.3g/%.3g/%.3g): need at least %d hours",
			s.Source, total, wc.Lookback, wc.Horizon, wc.TrainFrac, wc.ValFrac, 1-wc.TrainFrac-wc.ValFrac, MinHours(wc))
	}
	trainEnd, valEnd := splitPoints(total, wc)
	p, h, err := fit(s, wc, mi, trainEnd)
	if err != nil {
		return nil, err
	}
	return &Dataset{
		Train: p.windows(h, 0, trainEnd),
		Val:   p.windows(h, trainEnd, valEnd),
		Test:  p.windows(h, valEnd, total),
		Prep:  p,
	}, nil
}

// Windows cuts every window of s (a history of the same plant, of at least Lookback+Horizon
// hours) with p, as MakeDataset cuts a split: for scoring a trained forecaster on other data.
func (p *Preprocessing) Windows(s *Series) (*Windows, error) {
	if err := p.Accepts(s); err != nil {
		return nil, err
	}
	if need := p.Lookback + p.Horizon; s.Len() < need {
		return nil, fmt.Errorf("%s has %d hours, fewer than the %d of one window (lookback %d + horizon %d)", s.Source, s.Len(), need, p.Lookback, p.Horizon)
	}
	h := p.derive(s)
	p.inputRows(h)
	return p.windows(h, 0, s.Len()), nil
}

// windows cuts hours [from, to) of h into windows.
func (p *Preprocessing) windows(h *derived, from, to int) *Windows {
	L, H, nf := p.Lookback, p.Horizon, len(p.Features)
	n := to - from - L - H + 1
	w := &Windows{
		N: n, Steps: p.Steps(), Horizon: H, Features: nf,
		X:           make([]float32, n*p.Steps()*nf),
		Y:           make([]float32, n*3*H),
		Actual:      make([]float64, n*H),
		ClearSky:    make([]float64, n*H),
		Scored:      make([]bool, n*H),
		CLIPERIndex: make([]float64, n*H),
		TargetStart: make([]time.Time, n),
		prep:        p,
	}
	for b := range w.Baselines {
		w.Baselines[b] = make([]float64, n*H)
	}
	for k := range n {
		start := from + k + L
		w.TargetStart[k] = h.s.Time[start]
		p.input(h, start, h.s.Time[start:start+H], w.X[k*w.Steps*nf:(k+1)*w.Steps*nf])
		p.targets(h, start, w, k)
	}
	return w
}

// targets fills window k's per-target-hour arrays of w, for targets from hour start of h.
func (p *Preprocessing) targets(h *derived, start int, w *Windows, k int) {
	H, capKW := p.Horizon, p.Plant.CapacityKW
	kp, newest, ok := p.persistence(h, start)
	y := w.Y[k*3*H : (k+1)*3*H]
	for j := range H {
		i, at := start+j, k*H+j
		t, cs := h.s.Time[i], h.cs[i]
		kc := p.cliper(kp, newest, ok, i, t)
		w.Actual[at], w.ClearSky[at], w.Scored[at], w.CLIPERIndex[at] = h.s.Power[i], cs, h.scored(i), kc
		smart := p.climatology(t)
		if ok {
			smart = kp
		}
		w.Baselines[BaselinePersistence][at] = p.clampKW(h.s.Power[i-24], cs)
		w.Baselines[BaselineSmartPersistence][at] = p.clampKW(smart*cs, cs)
		w.Baselines[BaselineClimatology][at] = p.clampKW(p.climatology(t)*cs, cs)
		w.Baselines[BaselineCLIPER][at] = p.clampKW(kc*cs, cs)
		if h.s.IsEstimated(i) {
			continue // Y stays 0: not learnt from
		}
		scale, offset := 1.0, 0.0
		switch p.Target {
		case TargetClearSkyIndex:
			scale = cs / capKW
		case TargetCLIPERResidual:
			scale, offset = cs/capKW, kc*cs/capKW
		}
		y[j], y[H+j], y[2*H+j] = float32(scale), float32(offset), float32(h.s.Power[i]/capKW)
	}
}
