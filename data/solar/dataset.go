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

// Windows holds the windows of one split, flattened row-major for a single
// copy into a tensor. Window w covers input hours s..s+Lookback-1 of the
// series and target hours s+Lookback..s+Lookback+Horizon-1; consecutive
// windows start one hour apart.
type Windows struct {
	N, Lookback, Horizon, Features int

	X []float32 // normalized inputs, [N][Lookback][Features], features in Dataset.FeatureNames order
	Y []float32 // normalized power targets, [N][Horizon]: the Horizon hours right after the inputs
	// Persistence is the normalized day-ahead persistence forecast, [N][Horizon]:
	// for target hour j, the power at hour j-24 (same hour one day earlier),
	// always one of the window's own inputs. It is the baseline to beat.
	Persistence []float32
	TargetStart []time.Time // [N]: time of each window's first target hour
}

// Normalizer holds the z-score parameters fitted on the training hours:
// normalized = (raw - Mean) / Std per feature. A feature that is constant
// over the training hours gets Std 1.
type Normalizer struct {
	Mean, Std  []float64 // per feature, in Dataset.FeatureNames order; Std > 0
	PowerIndex int       // index of the power feature; Y and Persistence use its Mean and Std
}

// PowerKW de-normalizes a power value (a target or a prediction) to kW. It
// does not clip: a prediction may de-normalize below 0 or above capacity.
func (n Normalizer) PowerKW(v float32) float64 {
	return float64(v)*n.Std[n.PowerIndex] + n.Mean[n.PowerIndex]
}

// PowerValue normalizes a power in kW the way Y and Persistence are.
func (n Normalizer) PowerValue(kw float64) float32 {
	return float32((kw - n.Mean[n.PowerIndex]) / n.Std[n.PowerIndex])
}

// Dataset is a series cut into chronological train, validation and test
// windows with a shared normalization.
type Dataset struct {
	Train, Val, Test *Windows
	FeatureNames     []string // per input feature, see MakeDataset
	Norm             Normalizer
}

// Feature names, in the order MakeDataset uses them. Optional features
// appear only when the series has the column.
const (
	FeatureHourSin            = "hour_sin"            // sin(2π·UTC hour/24)
	FeatureHourCos            = "hour_cos"            // cos(2π·UTC hour/24)
	FeatureDayOfYearSin       = "doy_sin"             // sin(2π·(day of year-1 + hour/24)/days in year)
	FeatureDayOfYearCos       = "doy_cos"             // cos of the same angle
	FeatureIrradiance         = "irradiance"          // measured irradiance, W/m² (optional)
	FeatureClearSkyIrradiance = "irradiance_clearsky" // clear-sky POA proxy, W/m² (optional, instead of FeatureIrradiance)
	FeatureTemperature        = "temperature"         // °C (optional)
	FeatureCloud              = "cloud"               // cloud cover fraction (optional)
	FeaturePower              = "power"               // kW, always last
)

// splitEpsilon guards the split arithmetic against rounding (0.29*100 is
// 28.999999999999996 in float64).
const splitEpsilon = 1e-9

// MakeDataset validates s and wc, computes per-hour features, fits the
// Normalizer on the training hours and cuts each split into windows with a
// stride of one hour.
//
// Features per hour, in order: hour_sin, hour_cos, doy_sin, doy_cos, then
// irradiance or irradiance_clearsky when s.Irradiance is set, temperature
// when s.Temperature is set, cloud when s.Cloud is set, and power last: 5 to
// 8 features (8 for a Generate series).
//
// Splits of a series of T hours: the first floor(T·TrainFrac) hours train,
// the next floor(T·ValFrac) validate, the rest test; a window lies wholly
// inside one split, so no input or target is shared across splits. Each
// split needs at least Lookback+Horizon hours; otherwise MakeDataset returns
// an error saying how many hours suffice (the least N such that any series
// of N or more hours works).
func MakeDataset(s *Series, wc WindowConfig) (*Dataset, error) {
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
	names, raw := features(s)
	nf := len(names)
	norm := fitNormalizer(raw, nf, trainEnd)
	feat := make([]float32, len(raw))
	for i, v := range raw {
		f := i % nf
		feat[i] = float32((v - norm.Mean[f]) / norm.Std[f])
	}
	power := make([]float32, total) // normalized power per hour
	for i := range power {
		power[i] = feat[i*nf+norm.PowerIndex]
	}
	cut := func(from, to int) *Windows {
		return makeWindows(feat, power, s.Time, nf, from, to, wc)
	}
	return &Dataset{
		Train:        cut(0, trainEnd),
		Val:          cut(trainEnd, valEnd),
		Test:         cut(valEnd, total),
		FeatureNames: names,
		Norm:         norm,
	}, nil
}

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

// features returns the feature names and the raw feature matrix [T][F].
func features(s *Series) ([]string, []float64) {
	names := []string{FeatureHourSin, FeatureHourCos, FeatureDayOfYearSin, FeatureDayOfYearCos}
	var cols [][]float64
	if s.Irradiance != nil {
		name := FeatureIrradiance
		if s.IrradianceClearSky {
			name = FeatureClearSkyIrradiance
		}
		names = append(names, name)
		cols = append(cols, s.Irradiance)
	}
	if s.Temperature != nil {
		names = append(names, FeatureTemperature)
		cols = append(cols, s.Temperature)
	}
	if s.Cloud != nil {
		names = append(names, FeatureCloud)
		cols = append(cols, s.Cloud)
	}
	names = append(names, FeaturePower)
	cols = append(cols, s.Power)

	nf := len(names)
	raw := make([]float64, s.Len()*nf)
	for i, t := range s.Time {
		t = t.UTC()
		hour := float64(t.Hour()) + float64(t.Minute())/60
		day := 2 * math.Pi * (float64(t.YearDay()-1) + hour/24) / float64(daysInYear(t.Year()))
		r := raw[i*nf : (i+1)*nf]
		r[0], r[1] = math.Sin(2*math.Pi*hour/24), math.Cos(2*math.Pi*hour/24)
		r[2], r[3] = math.Sin(day), math.Cos(day)
		for k, c := range cols {
			r[4+k] = c[i]
		}
	}
	return names, raw
}

// fitNormalizer computes per-feature mean and population standard deviation
// over the first rows hours of raw.
func fitNormalizer(raw []float64, nf, rows int) Normalizer {
	n := Normalizer{Mean: make([]float64, nf), Std: make([]float64, nf), PowerIndex: nf - 1}
	for i := range rows {
		for f, v := range raw[i*nf : (i+1)*nf] {
			n.Mean[f] += v
		}
	}
	for f := range n.Mean {
		n.Mean[f] /= float64(rows)
	}
	for i := range rows {
		for f, v := range raw[i*nf : (i+1)*nf] {
			d := v - n.Mean[f]
			n.Std[f] += d * d
		}
	}
	for f := range n.Std {
		n.Std[f] = math.Sqrt(n.Std[f] / float64(rows))
		if n.Std[f] < 1e-9 {
			n.Std[f] = 1
		}
	}
	return n
}

// makeWindows cuts hours [from, to) of the normalized feature matrix feat
// ([T][nf]) and normalized power into windows.
func makeWindows(feat, power []float32, times []time.Time, nf, from, to int, wc WindowConfig) *Windows {
	L, H := wc.Lookback, wc.Horizon
	n := to - from - L - H + 1
	w := &Windows{
		N: n, Lookback: L, Horizon: H, Features: nf,
		X:           make([]float32, n*L*nf),
		Y:           make([]float32, n*H),
		Persistence: make([]float32, n*H),
		TargetStart: make([]time.Time, n),
	}
	for k := range n {
		s := from + k
		copy(w.X[k*L*nf:(k+1)*L*nf], feat[s*nf:(s+L)*nf])
		copy(w.Y[k*H:(k+1)*H], power[s+L:s+L+H])
		copy(w.Persistence[k*H:(k+1)*H], power[s+L-24:s+L+H-24])
		w.TargetStart[k] = times[s+L]
	}
	return w
}
