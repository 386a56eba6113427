package solar_test

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"spottrain/data/solar"
)

var t0 = time.Date(2022, time.March, 1, 0, 0, 0, 0, time.UTC)

// rampSeries returns n hours whose power is i/10 kW at hour i: every value
// is distinct, so misplaced indices show.
func rampSeries(n int) *solar.Series {
	s := &solar.Series{Source: "ramp", Time: hourly(t0, n), Power: make([]float64, n), CapacityKW: float64(n) / 10}
	for i := range s.Power {
		s.Power[i] = float64(i) / 10
	}
	return s
}

func makeDataset(t *testing.T, s *solar.Series, wc solar.WindowConfig) *solar.Dataset {
	t.Helper()
	ds, err := solar.MakeDataset(s, wc)
	if err != nil {
		t.Fatalf("MakeDataset: %v", err)
	}
	return ds
}

func TestMakeDatasetShapes(t *testing.T) {
	s := generate(t, solar.DefaultSynthConfig())
	wc := solar.DefaultWindowConfig()
	ds := makeDataset(t, s, wc)

	wantNames := []string{"hour_sin", "hour_cos", "doy_sin", "doy_cos", "irradiance_clearsky", "temperature", "cloud", "power"}
	if !reflect.DeepEqual(ds.FeatureNames, wantNames) {
		t.Errorf("features %v, want %v", ds.FeatureNames, wantNames)
	}
	// 17520 hours: train 12264, val 2628, test 2628; each split of n hours
	// has n - (48+24) + 1 windows.
	for _, sp := range []struct {
		name string
		w    *solar.Windows
		n    int
	}{{"train", ds.Train, 12193}, {"val", ds.Val, 2557}, {"test", ds.Test, 2557}} {
		w := sp.w
		if w.N != sp.n || w.Lookback != 48 || w.Horizon != 24 || w.Features != 8 {
			t.Errorf("%s: N=%d L=%d H=%d F=%d, want N=%d L=48 H=24 F=8", sp.name, w.N, w.Lookback, w.Horizon, w.Features, sp.n)
		}
		if len(w.X) != w.N*48*8 || len(w.Y) != w.N*24 || len(w.Persistence) != w.N*24 || len(w.TargetStart) != w.N {
			t.Errorf("%s: len X %d Y %d P %d T %d for N %d", sp.name, len(w.X), len(w.Y), len(w.Persistence), len(w.TargetStart), w.N)
		}
		for i := 1; i < w.N; i++ {
			if w.TargetStart[i].Sub(w.TargetStart[i-1]) != time.Hour {
				t.Fatalf("%s: window %d starts %v after the previous, want stride 1h", sp.name, i, w.TargetStart[i].Sub(w.TargetStart[i-1]))
			}
		}
		for _, v := range w.X {
			if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 20 {
				t.Fatalf("%s: input %v not a sane z-score", sp.name, v)
			}
		}
	}
	if got := ds.Norm.PowerIndex; got != 7 {
		t.Errorf("PowerIndex %d, want 7 (last)", got)
	}
}

func TestMakeDatasetNoLeakage(t *testing.T) {
	s := generate(t, solar.DefaultSynthConfig())
	wc := solar.DefaultWindowConfig()
	ds := makeDataset(t, s, wc)
	lookback := time.Duration(wc.Lookback) * time.Hour
	lastTarget := func(w *solar.Windows) time.Time {
		return w.TargetStart[w.N-1].Add(time.Duration(w.Horizon-1) * time.Hour)
	}
	firstInput := func(w *solar.Windows) time.Time { return w.TargetStart[0].Add(-lookback) }

	if !firstInput(ds.Val).After(lastTarget(ds.Train)) {
		t.Errorf("first val input %v not after last train target %v", firstInput(ds.Val), lastTarget(ds.Train))
	}
	if !firstInput(ds.Test).After(lastTarget(ds.Val)) {
		t.Errorf("first test input %v not after last val target %v", firstInput(ds.Test), lastTarget(ds.Val))
	}
	// Splits tile the series: no hour is lost between them either.
	if got := firstInput(ds.Val).Sub(lastTarget(ds.Train)); got != time.Hour {
		t.Errorf("train/val boundary skips %v", got-time.Hour)
	}
	if !firstInput(ds.Train).Equal(s.Time[0]) || !lastTarget(ds.Test).Equal(s.Time[s.Len()-1]) {
		t.Errorf("windows span %v..%v, series %v..%v", firstInput(ds.Train), lastTarget(ds.Test), s.Time[0], s.Time[s.Len()-1])
	}
}

func TestMakeDatasetNormalizerFitsTrainOnly(t *testing.T) {
	// Power is 1 kW for the first 70% and 5 kW afterwards: statistics over
	// the whole series would differ from those over the train split.
	n := 1000
	s := &solar.Series{Source: "step", Time: hourly(t0, n), Power: make([]float64, n), CapacityKW: 6}
	for i := range s.Power {
		s.Power[i] = 1 + float64(i%7)/10 // train level with some spread
		if i >= 700 {
			s.Power[i] += 4
		}
	}
	wc := solar.WindowConfig{Lookback: 24, Horizon: 12, TrainFrac: 0.7, ValFrac: 0.15}
	ds := makeDataset(t, s, wc)

	var mean, sq float64
	for _, p := range s.Power[:700] {
		v := float64(ds.Norm.PowerValue(p))
		mean += v
		sq += v * v
	}
	mean /= 700
	std := math.Sqrt(sq/700 - mean*mean)
	if !near(mean, 0, 1e-5) || !near(std, 1, 1e-5) {
		t.Errorf("normalized train power mean %.6f std %.6f, want 0 and 1", mean, std)
	}
	if m := ds.Norm.Mean[ds.Norm.PowerIndex]; !near(m, 1.3, 0.01) {
		t.Errorf("power mean %.3f, want the train mean 1.3 (whole-series mean is about 2.5)", m)
	}
	// Targets de-normalize to the series, in every split.
	for _, w := range []*solar.Windows{ds.Train, ds.Val, ds.Test} {
		for k := 0; k < w.N; k += 17 {
			start := int(w.TargetStart[k].Sub(t0) / time.Hour)
			for h := range w.Horizon {
				if got, want := ds.Norm.PowerKW(w.Y[k*w.Horizon+h]), s.Power[start+h]; !near(got, want, 1e-5) {
					t.Fatalf("window %d target %d: %v kW, want %v", k, h, got, want)
				}
			}
		}
	}
}

func TestMakeDatasetWindowContents(t *testing.T) {
	tests := []solar.WindowConfig{
		{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2},
		{Lookback: 30, Horizon: 5, TrainFrac: 0.5, ValFrac: 0.25},
		{Lookback: 48, Horizon: 1, TrainFrac: 0.7, ValFrac: 0.15},
	}
	for _, wc := range tests {
		t.Run("L"+strconv.Itoa(wc.Lookback)+"H"+strconv.Itoa(wc.Horizon), func(t *testing.T) {
			s := rampSeries(400)
			ds := makeDataset(t, s, wc)
			if want := []string{"hour_sin", "hour_cos", "doy_sin", "doy_cos", "power"}; !reflect.DeepEqual(ds.FeatureNames, want) {
				t.Fatalf("features %v, want %v", ds.FeatureNames, want)
			}
			nf := len(ds.FeatureNames)
			for _, w := range []*solar.Windows{ds.Train, ds.Val, ds.Test} {
				for k := range w.N {
					target := int(w.TargetStart[k].Sub(t0) / time.Hour) // index of the first target hour
					first := target - wc.Lookback
					for l := range wc.Lookback {
						got := w.X[(k*wc.Lookback+l)*nf+ds.Norm.PowerIndex]
						if want := ds.Norm.PowerValue(s.Power[first+l]); got != want {
							t.Fatalf("window %d input %d: %v, want %v", k, l, got, want)
						}
					}
					for h := range wc.Horizon {
						if got, want := w.Y[k*wc.Horizon+h], ds.Norm.PowerValue(s.Power[target+h]); got != want {
							t.Fatalf("window %d target %d: %v, want %v", k, h, got, want)
						}
						// Day-ahead persistence: the same hour one day earlier,
						// which is input target+h-24.
						got := w.Persistence[k*wc.Horizon+h]
						if want := ds.Norm.PowerValue(s.Power[target+h-24]); got != want {
							t.Fatalf("window %d persistence %d: %v, want %v", k, h, got, want)
						}
						if in := w.X[(k*wc.Lookback+wc.Lookback-24+h)*nf+ds.Norm.PowerIndex]; got != in {
							t.Fatalf("window %d persistence %d: %v is not the input 24 h earlier %v", k, h, got, in)
						}
					}
				}
			}
		})
	}
}

func TestMakeDatasetTimeFeatures(t *testing.T) {
	s := rampSeries(400)
	ds := makeDataset(t, s, solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2})
	raw := func(k, l, f int) float64 {
		w := ds.Train
		return float64(w.X[(k*w.Lookback+l)*w.Features+f])*ds.Norm.Std[f] + ds.Norm.Mean[f]
	}
	for l := range 24 {
		// Window 0 starts at t0 (midnight UTC, March 1 = day 60 of 2022).
		hour := 2 * math.Pi * float64(l) / 24
		day := 2 * math.Pi * (59 + float64(l)/24) / 365
		want := []float64{math.Sin(hour), math.Cos(hour), math.Sin(day), math.Cos(day)}
		for f, v := range want {
			if got := raw(0, l, f); !near(got, v, 1e-5) {
				t.Errorf("hour %d feature %s = %v, want %v", l, ds.FeatureNames[f], got, v)
			}
		}
	}
}

func TestMakeDatasetOptionalFeatures(t *testing.T) {
	base := func() *solar.Series { return rampSeries(400) }
	col := func(v float64) []float64 {
		c := make([]float64, 400)
		for i := range c {
			c[i] = v + float64(i%24)/100
		}
		return c
	}
	tests := []struct {
		name string
		edit func(*solar.Series)
		want []string
	}{
		{"MeasuredIrradiance", func(s *solar.Series) { s.Irradiance = col(100) }, []string{"irradiance"}},
		{"ClearSkyIrradiance", func(s *solar.Series) { s.Irradiance, s.IrradianceClearSky = col(100), true }, []string{"irradiance_clearsky"}},
		{"TemperatureOnly", func(s *solar.Series) { s.Temperature = col(10) }, []string{"temperature"}},
		{"All", func(s *solar.Series) { s.Irradiance, s.Temperature, s.Cloud = col(1), col(2), col(0.5) }, []string{"irradiance", "temperature", "cloud"}},
		{"ConstantCloud", func(s *solar.Series) { s.Cloud = make([]float64, 400) }, []string{"cloud"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := base()
			tc.edit(s)
			ds := makeDataset(t, s, solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2})
			want := append(append([]string{"hour_sin", "hour_cos", "doy_sin", "doy_cos"}, tc.want...), "power")
			if !reflect.DeepEqual(ds.FeatureNames, want) {
				t.Fatalf("features %v, want %v", ds.FeatureNames, want)
			}
			for f, sd := range ds.Norm.Std {
				if !(sd > 0) {
					t.Errorf("feature %s: std %v, want > 0", want[f], sd)
				}
			}
			for _, v := range ds.Train.X {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatalf("non-finite input %v", v)
				}
			}
		})
	}
}

func TestMakeDatasetErrors(t *testing.T) {
	good := solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2}
	tests := []struct {
		field string
		edit  func(*solar.WindowConfig)
	}{
		{"WindowConfig.Lookback", func(w *solar.WindowConfig) { w.Lookback = 23 }},
		{"WindowConfig.Horizon", func(w *solar.WindowConfig) { w.Horizon = 25 }},
		{"WindowConfig.Horizon", func(w *solar.WindowConfig) { w.Horizon = 0 }},
		{"WindowConfig.TrainFrac", func(w *solar.WindowConfig) { w.TrainFrac = 0 }},
		{"WindowConfig.TrainFrac", func(w *solar.WindowConfig) { w.TrainFrac = math.NaN() }},
		{"WindowConfig.ValFrac", func(w *solar.WindowConfig) { w.ValFrac = 0 }},
		{"WindowConfig.ValFrac", func(w *solar.WindowConfig) { w.TrainFrac, w.ValFrac = 0.8, 0.2 }},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			wc := good
			tc.edit(&wc)
			_, err := solar.MakeDataset(rampSeries(400), wc)
			wantConfigError(t, err, tc.field)
		})
	}

	badSeries := []struct {
		name, want string
		edit       func(*solar.Series)
	}{
		{"Gap", "want exactly 1h", func(s *solar.Series) { s.Time[5] = s.Time[5].Add(time.Minute) }},
		{"NegativePower", "Power[3]", func(s *solar.Series) { s.Power[3] = -1 }},
		{"NaNPower", "Power[3]", func(s *solar.Series) { s.Power[3] = math.NaN() }},
		{"ShortColumn", "Temperature", func(s *solar.Series) { s.Temperature = make([]float64, 10) }},
		{"CloudRange", "Cloud[0]", func(s *solar.Series) { s.Cloud = make([]float64, s.Len()); s.Cloud[0] = 1.5 }},
	}
	for _, tc := range badSeries {
		t.Run(tc.name, func(t *testing.T) {
			s := rampSeries(400)
			tc.edit(s)
			_, err := solar.MakeDataset(s, good)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ramp") {
				t.Errorf("error %v, want one naming the series and %q", err, tc.want)
			}
		})
	}
}

// The error for a short series states the least length from which on every
// series works.
func TestMakeDatasetTooShort(t *testing.T) {
	for _, wc := range []solar.WindowConfig{
		solar.DefaultWindowConfig(),
		{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2},
		{Lookback: 36, Horizon: 7, TrainFrac: 0.9, ValFrac: 0.05},
	} {
		_, err := solar.MakeDataset(rampSeries(100), wc)
		if err == nil {
			t.Fatalf("%+v: no error for 100 hours", wc)
		}
		msg := err.Error()
		i := strings.LastIndex(msg, "need at least ")
		var need int
		if _, scanErr := fmt.Sscanf(msg[max(i, 0):], "need at least %d hours", &need); i < 0 || scanErr != nil {
			t.Fatalf("error %q does not say how many hours are needed", msg)
		}
		for n := need; n < need+100; n++ {
			if _, err := solar.MakeDataset(rampSeries(n), wc); err != nil {
				t.Fatalf("%+v: %d hours (the stated minimum is %d) fail: %v", wc, n, need, err)
			}
		}
		ds, err := solar.MakeDataset(rampSeries(need-1), wc)
		if err == nil {
			t.Errorf("%+v: %d hours (one less than the minimum) work: %d/%d/%d windows", wc, need-1, ds.Train.N, ds.Val.N, ds.Test.N)
		}
	}
}
