package solar

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// What a forecaster's outputs mean (Preprocessing.Target).
const (
	TargetPower          = "power"           // each target hour's power, as a fraction of capacity
	TargetClearSkyIndex  = "clearsky_index"  // each target hour's clear-sky index k = P/P_clearsky
	TargetCLIPERResidual = "cliper_residual" // k minus the CLIPER baseline's k
)

// Targets lists the targets, the default first.
var Targets = []string{TargetClearSkyIndex, TargetCLIPERResidual, TargetPower}

// ModelInputs chooses what a forecaster reads and predicts.
type ModelInputs struct {
	Target string // one of Targets
	// FutureInputs appends the Horizon target hours to each window as rows of what is known in
	// advance (time, clear-sky power, climatology), their measured features zero (the mean) and
	// the observed flag 0; the forecaster emits one output per such row.
	FutureInputs bool
}

// Feature names, in the order a Preprocessing uses them. Optional ones appear only when the
// series has their column (irradiance only when measured).
const (
	FeatureHourSin       = "hour_sin"       // sin(2π·UTC hour/24), of the sample's instant
	FeatureHourCos       = "hour_cos"       // cos of the same angle
	FeatureDayOfYearSin  = "doy_sin"        // sin(2π·(day of year-1 + hour/24)/days in year)
	FeatureDayOfYearCos  = "doy_cos"        // cos of the same angle
	FeatureClearSky      = "clearsky"       // clear-sky power / capacity (known in advance)
	FeatureClimatology   = "climatology"    // the climatological clear-sky index of the month and hour (known)
	FeatureObserved      = "observed"       // 1 on measured rows, 0 on target rows (FutureInputs only)
	FeatureIrradiance    = "irradiance"     // measured irradiance, W/m² (optional)
	FeatureTemperature   = "temperature"    // °C (optional)
	FeatureCloud         = "cloud"          // cloud cover fraction (optional)
	FeatureClearSkyIndex = "clearsky_index" // measured k, 0 outside daylight
	FeaturePower         = "power"          // power / capacity, always last
)

// knownFeatures is how many leading features are known in advance for any hour.
const knownFeatures = 6

// MaxClearSkyIndex bounds every clear-sky index, measured or forecast: near sunrise and sunset a
// small clear-sky power makes the ratio meaningless.
const MaxClearSkyIndex = 1.5

// PersistenceHours is how many of the newest daylight hours smart persistence and CLIPER average
// (energy-weighted) into the clear-sky index they carry forward.
const PersistenceHours = 3

// PreprocessingVersion is the version of the Preprocessing document this package writes and reads.
const PreprocessingVersion = 1

// Preprocessing is everything that turns an hourly PV history into a forecaster's inputs and its
// outputs back into kW, fitted on a training split: the plant and its clear-sky model, the
// features and their normalisation, the climatology and the CLIPER weights. It is a JSON document
// (every checkpoint of a forecaster stores it), and with the network it reproduces a forecast.
type Preprocessing struct {
	Version           int     `json:"version"`
	ClearSkyModel     string  `json:"clearsky_model"` // ClearSkyModel
	Plant             Plant   `json:"plant"`
	DaylightZenithDeg float64 `json:"daylight_zenith_deg"`
	MaxClearSkyIndex  float64 `json:"max_clearsky_index"`
	Lookback          int     `json:"lookback_hours"`
	Horizon           int     `json:"horizon_hours"`
	Target            string  `json:"target"`
	FutureInputs      bool    `json:"future_inputs"`
	// Features names the input features per row; Mean and Std normalise them: (raw-Mean)/Std.
	Features []string  `json:"features"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
	// Climatology is the energy-weighted mean clear-sky index of the training split's daylight
	// hours, [month-1][UTC hour].
	Climatology      [12][24]float64 `json:"climatology"`
	PersistenceHours int             `json:"persistence_hours"`
	// CLIPERWeight is ρ of CLIPER by lag, [lag-1] for lags 1..Lookback+Horizon hours from the
	// newest persistence hour to the target hour, fitted on the training windows.
	CLIPERWeight []float64 `json:"cliper_weight"`
}

// Steps returns the rows of a window: Lookback, plus Horizon with FutureInputs.
func (p *Preprocessing) Steps() int {
	if p.FutureInputs {
		return p.Lookback + p.Horizon
	}
	return p.Lookback
}

// ParsePreprocessing decodes and checks a Preprocessing document.
func ParsePreprocessing(doc []byte) (*Preprocessing, error) {
	var p Preprocessing
	if err := json.Unmarshal(doc, &p); err != nil {
		return nil, fmt.Errorf("preprocessing: %w", err)
	}
	switch {
	case p.Version != PreprocessingVersion:
		return nil, fmt.Errorf("preprocessing version %d, this spottrain reads %d", p.Version, PreprocessingVersion)
	case p.ClearSkyModel != ClearSkyModel:
		return nil, fmt.Errorf("preprocessing uses clear-sky model %q, this spottrain has %q", p.ClearSkyModel, ClearSkyModel)
	case !slices.Contains(Targets, p.Target):
		return nil, fmt.Errorf("preprocessing: unknown target %q", p.Target)
	case len(p.Features) == 0 || len(p.Mean) != len(p.Features) || len(p.Std) != len(p.Features):
		return nil, fmt.Errorf("preprocessing: %d features with %d means and %d deviations", len(p.Features), len(p.Mean), len(p.Std))
	case len(p.CLIPERWeight) != p.Lookback+p.Horizon || p.Horizon < 1 || p.Lookback < 24:
		return nil, fmt.Errorf("preprocessing: %d CLIPER weights for lookback %d and horizon %d", len(p.CLIPERWeight), p.Lookback, p.Horizon)
	}
	return &p, nil
}

// derived holds what the preprocessing derives from each hour of a series.
type derived struct {
	s         *Series
	cs        []float64 // clear-sky power, kW
	elevation []float64 // the sun's elevation by the plant's geometry, degrees
	daylight  []bool    // sun zenith below DaylightZenithDeg (PVGIS' H_sun where the series has it)
	k         []float64 // clear-sky index in [0, MaxClearSkyIndex]; 0 outside daylight
	// past and future are each hour's normalised input row, [T][features], as a window's
	// lookback hour and (with FutureInputs) as its target hour: the same in every window that
	// holds the hour. Set by inputRows.
	past, future []float32
}

// scored reports whether hour i counts in training and scoring: daylight, and measured.
func (h *derived) scored(i int) bool { return h.daylight[i] && !h.s.IsEstimated(i) }

// derive computes the clear-sky power, daylight and clear-sky index of every hour of s.
func (p *Preprocessing) derive(s *Series) *derived {
	n := s.Len()
	h := &derived{s: s, cs: make([]float64, n), elevation: make([]float64, n), daylight: make([]bool, n), k: make([]float64, n)}
	minElevation := 90 - p.DaylightZenithDeg
	for i, t := range s.Time {
		h.cs[i] = p.Plant.ClearSkyKW(t)
		h.elevation[i] = p.Plant.Elevation(t)
		elevation := h.elevation[i]
		if s.SunHeight != nil {
			elevation = s.SunHeight[i]
		}
		h.daylight[i] = elevation > minElevation && h.cs[i] > 0
		if h.daylight[i] {
			h.k[i] = math.Min(s.Power[i]/h.cs[i], p.MaxClearSkyIndex)
		}
	}
	return h
}

// climatology returns the climatological clear-sky index of the hour starting at t.
func (p *Preprocessing) climatology(t time.Time) float64 {
	t = t.UTC()
	return p.Climatology[t.Month()-1][t.Hour()]
}

// knownRow writes the raw known-in-advance features of the hour starting at t, whose clear-sky
// power is cs, into r.
func (p *Preprocessing) knownRow(t time.Time, cs float64, r []float64) {
	u := t.Add(p.Plant.SampleOffset).UTC()
	hour := float64(u.Hour()) + float64(u.Minute())/60
	day := 2 * math.Pi * (float64(u.YearDay()-1) + hour/24) / float64(daysInYear(u.Year()))
	r[0], r[1] = math.Sin(2*math.Pi*hour/24), math.Cos(2*math.Pi*hour/24)
	r[2], r[3] = math.Sin(day), math.Cos(day)
	r[4] = cs / p.Plant.CapacityKW
	r[5] = p.climatology(t)
}

// pastRow writes the raw features of hour i of h into r: the known ones, then what was measured.
func (p *Preprocessing) pastRow(h *derived, i int, r []float64) {
	p.knownRow(h.s.Time[i], h.cs[i], r)
	for f := knownFeatures; f < len(p.Features); f++ {
		var v float64
		switch p.Features[f] {
		case FeatureObserved:
			v = 1
		case FeatureIrradiance:
			v = h.s.Irradiance[i]
		case FeatureTemperature:
			v = h.s.Temperature[i]
		case FeatureCloud:
			v = h.s.Cloud[i]
		case FeatureClearSkyIndex:
			v = h.k[i]
		case FeaturePower:
			v = h.s.Power[i] / p.Plant.CapacityKW
		}
		r[f] = v
	}
}

// futureRow writes the raw features of a target hour starting at t, of clear-sky power cs: the
// known ones, and every other at its mean (0 once normalised), observed 0.
func (p *Preprocessing) futureRow(t time.Time, cs float64, r []float64) {
	p.knownRow(t, cs, r)
	for f := knownFeatures; f < len(p.Features); f++ {
		r[f] = p.Mean[f]
		if p.Features[f] == FeatureObserved {
			r[f] = 0
		}
	}
}

// normalize writes the normalised raw row r into dst.
func (p *Preprocessing) normalize(r []float64, dst []float32) {
	for f, v := range r {
		dst[f] = float32((v - p.Mean[f]) / p.Std[f])
	}
}

// inputRows sets h.past and, with FutureInputs, h.future: every hour's normalised rows.
func (p *Preprocessing) inputRows(h *derived) {
	nf, n := len(p.Features), len(h.cs)
	r := make([]float64, nf)
	h.past = make([]float32, n*nf)
	if p.FutureInputs {
		h.future = make([]float32, n*nf)
	}
	for i, t := range h.s.Time {
		p.pastRow(h, i, r)
		p.normalize(r, h.past[i*nf:(i+1)*nf])
		if p.FutureInputs {
			p.futureRow(t, h.cs[i], r)
			p.normalize(r, h.future[i*nf:(i+1)*nf])
		}
	}
}

// input writes the window whose first target hour is hour start of h (start-Lookback >= 0) into
// dst ([Steps][features]); times gives the target hours, which may lie past the end of h.
func (p *Preprocessing) input(h *derived, start int, times []time.Time, dst []float32) {
	nf := len(p.Features)
	copy(dst[:p.Lookback*nf], h.past[(start-p.Lookback)*nf:start*nf])
	if !p.FutureInputs {
		return
	}
	r := make([]float64, nf)
	for j, t := range times {
		row := dst[(p.Lookback+j)*nf : (p.Lookback+j+1)*nf]
		if i := start + j; i < len(h.cs) {
			copy(row, h.future[i*nf:(i+1)*nf])
			continue
		}
		p.futureRow(t, p.Plant.ClearSkyKW(t), r)
		p.normalize(r, row)
	}
}

// persistence returns the clear-sky index that smart persistence carries forward from a window
// whose first target hour is hour start of h: the energy-weighted clear-sky index (ΣP/ΣP_clearsky)
// of the newest PersistenceHours measured daylight hours of its lookback, and the newest of them.
// ok is false when the lookback has no measured daylight hour.
func (p *Preprocessing) persistence(h *derived, start int) (k float64, newest int, ok bool) {
	var power, cs float64
	found := 0
	for i := start - 1; i >= start-p.Lookback && found < p.PersistenceHours; i-- {
		if !h.scored(i) {
			continue
		}
		if found == 0 {
			newest = i
		}
		found++
		power += h.s.Power[i]
		cs += h.cs[i]
	}
	if found == 0 {
		return 0, 0, false
	}
	return math.Min(power/cs, p.MaxClearSkyIndex), newest, true
}

// cliper returns CLIPER's clear-sky index for target hour i (starting at t) of a window whose
// persistence is k from hour newest (ok false: none, then it is the climatology).
func (p *Preprocessing) cliper(k float64, newest int, ok bool, i int, t time.Time) float64 {
	clim := p.climatology(t)
	if !ok {
		return clim
	}
	rho := p.CLIPERWeight[min(i-newest, len(p.CLIPERWeight))-1]
	return rho*k + (1-rho)*clim
}

// toKW turns an output o of the forecaster for a target hour with clear-sky power cs (kW) and
// CLIPER index kc into kW: exactly 0 when cs is 0 (night), else clamped to [0, capacity].
func (p *Preprocessing) toKW(o float32, cs, kc float64) float64 {
	if cs == 0 {
		return 0
	}
	var kw float64
	switch p.Target {
	case TargetPower:
		kw = float64(o) * p.Plant.CapacityKW
	case TargetClearSkyIndex:
		kw = float64(o) * cs
	case TargetCLIPERResidual:
		kw = (float64(o) + kc) * cs
	}
	return math.Max(0, math.Min(kw, p.Plant.CapacityKW))
}

// clampKW bounds a baseline's forecast as toKW does a model's.
func (p *Preprocessing) clampKW(kw, cs float64) float64 {
	if cs == 0 {
		return 0
	}
	return math.Max(0, math.Min(kw, p.Plant.CapacityKW))
}
