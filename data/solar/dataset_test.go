package solar_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"spottrain/data/solar"
)

var (
	t0     = time.Date(2022, time.March, 1, 0, 0, 0, 0, time.UTC)
	munich = solar.Site{Latitude: 48.1, Longitude: 11.6}
	kIndex = solar.ModelInputs{Target: solar.TargetClearSkyIndex, FutureInputs: true}
)

// rampSeries returns n hours at Munich whose power is i/10 kW at hour i while the sun is up, 0
// while it is down.
func rampSeries(n int) *solar.Series {
	s := &solar.Series{Source: "ramp", Time: hourly(t0, n), Power: make([]float64, n), CapacityKW: float64(n) / 10, Site: &munich}
	plant := solar.Plant{Site: munich}
	for i, t := range s.Time {
		if plant.Elevation(t) > 0 {
			s.Power[i] = float64(i) / 10
		}
	}
	return s
}

// indexSeries returns days of hours at Munich whose power is k(day)·P_clearsky, a clear-sky index
// constant over each day.
func indexSeries(days int, k func(day int) float64) *solar.Series {
	n := days * 24
	s := &solar.Series{Source: "index", Time: hourly(t0, n), Power: make([]float64, n), CapacityKW: 5, Site: &munich}
	plant := solar.Plant{Site: munich, Plane: solar.DefaultPlane(munich), CapacityKW: 5}
	for i, t := range s.Time {
		s.Power[i] = k(i/24) * plant.ClearSkyKW(t)
	}
	return s
}

func makeDataset(t *testing.T, s *solar.Series, wc solar.WindowConfig, mi solar.ModelInputs) *solar.Dataset {
	t.Helper()
	ds, err := solar.MakeDataset(s, wc, mi)
	if err != nil {
		t.Fatalf("MakeDataset: %v", err)
	}
	return ds
}

func TestMakeDatasetShapes(t *testing.T) {
	s := generate(t, solar.DefaultSynthConfig())
	for _, future := range []bool{true, false} {
		ds := makeDataset(t, s, solar.DefaultWindowConfig(), solar.ModelInputs{Target: solar.TargetClearSkyIndex, FutureInputs: future})
		want := []string{"hour_sin", "hour_cos", "doy_sin", "doy_cos", "clearsky", "climatology", "observed", "temperature", "cloud", "clearsky_index", "power"}
		steps := 72
		if !future {
			want, steps = append(want[:6:6], want[7:]...), 48
		}
		if !reflect.DeepEqual(ds.Prep.Features, want) {
			t.Errorf("future %v: features %v, want %v", future, ds.Prep.Features, want)
		}
		// 17520 hours: train 12264, val 2628, test 2628; each split of n hours has n - (48+24) + 1 windows.
		for _, sp := range []struct {
			name string
			w    *solar.Windows
			n    int
		}{{"train", ds.Train, 12193}, {"val", ds.Val, 2557}, {"test", ds.Test, 2557}} {
			w, nf := sp.w, len(want)
			if w.N != sp.n || w.Steps != steps || w.Horizon != 24 || w.Features != nf {
				t.Errorf("%s: N=%d steps=%d H=%d F=%d, want N=%d steps=%d H=24 F=%d", sp.name, w.N, w.Steps, w.Horizon, w.Features, sp.n, steps, nf)
			}
			if len(w.X) != w.N*steps*nf || len(w.Y) != w.N*3*24 || len(w.Actual) != w.N*24 || len(w.Baselines[solar.BaselineCLIPER]) != w.N*24 {
				t.Errorf("%s: len X %d Y %d actual %d CLIPER %d for N %d", sp.name, len(w.X), len(w.Y), len(w.Actual), len(w.Baselines[3]), w.N)
			}
			for _, v := range w.X {
				if math.IsNaN(float64(v)) || math.Abs(float64(v)) > 20 {
					t.Fatalf("%s: input %v not a sane z-score", sp.name, v)
				}
			}
		}
	}
}

func TestMakeDatasetNoLeakage(t *testing.T) {
	s := generate(t, solar.DefaultSynthConfig())
	wc := solar.DefaultWindowConfig()
	ds := makeDataset(t, s, wc, kIndex)
	lookback := time.Duration(wc.Lookback) * time.Hour
	lastTarget := func(w *solar.Windows) time.Time {
		return w.TargetStart[w.N-1].Add(time.Duration(w.Horizon-1) * time.Hour)
	}
	firstInput := func(w *solar.Windows) time.Time { return w.TargetStart[0].Add(-lookback) }
	if got := firstInput(ds.Val).Sub(lastTarget(ds.Train)); got != time.Hour {
		t.Errorf("first val input %v is not the hour after the last train target %v", firstInput(ds.Val), lastTarget(ds.Train))
	}
	if got := firstInput(ds.Test).Sub(lastTarget(ds.Val)); got != time.Hour {
		t.Errorf("first test input %v is not the hour after the last val target %v", firstInput(ds.Test), lastTarget(ds.Val))
	}
	if !firstInput(ds.Train).Equal(s.Time[0]) || !lastTarget(ds.Test).Equal(s.Time[s.Len()-1]) {
		t.Errorf("windows span %v..%v, series %v..%v", firstInput(ds.Train), lastTarget(ds.Test), s.Time[0], s.Time[s.Len()-1])
	}
	// The climatology is the train split's: a series whose index jumps after it does not move it.
	jump := indexSeries(100, func(day int) float64 { return map[bool]float64{true: 0.4, false: 0.9}[day < 70] })
	ds = makeDataset(t, jump, solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.7, ValFrac: 0.15}, kIndex)
	for m := range ds.Prep.Climatology {
		for h, k := range ds.Prep.Climatology[m] {
			if !near(k, 0.4, 1e-9) {
				t.Fatalf("climatology of month %d hour %d = %v, want the train split's 0.4", m+1, h, k)
			}
		}
	}
}

// Power at a constant clear-sky index: smart persistence, climatology and CLIPER are exact, and
// the targets are as the Y layout says.
func TestMakeDatasetTargetsAndBaselines(t *testing.T) {
	s := indexSeries(60, func(int) float64 { return 0.6 })
	s.Estimated = make([]bool, s.Len())
	s.Estimated[40*24+12] = true
	wc := solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2}
	for _, target := range solar.Targets {
		ds := makeDataset(t, s, wc, solar.ModelInputs{Target: target, FutureInputs: true})
		for _, w := range []*solar.Windows{ds.Train, ds.Val, ds.Test} {
			for i := range w.N {
				start := int(w.TargetStart[i].Sub(t0) / time.Hour)
				y := w.Y[i*72 : (i+1)*72]
				for j := range 24 {
					at, hour := i*24+j, start+j
					cs, p := w.ClearSky[at], s.Power[hour]
					if w.Actual[at] != p {
						t.Fatalf("window %d hour %d: actual %v, want %v", i, j, w.Actual[at], p)
					}
					wantPersistence := s.Power[hour-24]
					if cs == 0 {
						wantPersistence = 0 // night
					}
					if got := w.Baselines[solar.BaselinePersistence][at]; got != wantPersistence {
						t.Fatalf("persistence %v at hour %d, want %v (the power a day earlier, 0 at night)", got, hour, wantPersistence)
					}
					for _, b := range []int{solar.BaselineSmartPersistence, solar.BaselineClimatology, solar.BaselineCLIPER} {
						if got := w.Baselines[b][at]; !near(got, p, 1e-9) {
							t.Fatalf("%s forecasts %v kW at hour %d, want the exact %v", solar.BaselineNames[b], got, hour, p)
						}
					}
					// Y: scale a, offset b, truth c (shares of capacity) with a·output + b the
					// forecast; the output that reproduces the truth is o.
					var want [3]float64
					var o float64
					switch target {
					case solar.TargetPower:
						want, o = [3]float64{1, 0, p / 5}, p/5
					case solar.TargetClearSkyIndex:
						want, o = [3]float64{cs / 5, 0, p / 5}, 0.6
					case solar.TargetCLIPERResidual:
						want, o = [3]float64{cs / 5, 0.6 * cs / 5, p / 5}, 0
					}
					if s.Estimated[hour] {
						want = [3]float64{}
					}
					for c := range 3 {
						if !near(float64(y[c*24+j]), want[c], 1e-6) {
							t.Fatalf("%s: window %d hour %d: Y[%d] = %v, want %v", target, i, j, c, y[c*24+j], want[c])
						}
					}
					if w.Scored[at] && (cs == 0 || s.Estimated[hour]) {
						t.Fatalf("hour %d scored although night or estimated", hour)
					}
					if got := w.ForecastKW(i, j, float32(o)); !near(got, p, 1e-5) || (cs == 0 && got != 0) {
						t.Fatalf("%s: output %v at hour %d is %v kW, want %v (exactly 0 at night)", target, o, hour, got, p)
					}
				}
			}
		}
	}
}

// CLIPER's weight follows the persistence of the clear-sky index: near 1 within a day whose
// index is constant, near 0 a day later when days are independent.
func TestCLIPERWeightFollowsTheAutocorrelation(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ks := make([]float64, 400)
	for d := range ks {
		ks[d] = 0.2 + 0.8*r.Float64()
	}
	ds := makeDataset(t, indexSeries(400, func(d int) float64 { return ks[d] }), solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.7, ValFrac: 0.15}, kIndex)
	w := ds.Prep.CLIPERWeight
	if len(w) != 48 {
		t.Fatalf("%d weights, want 48 (lookback + horizon)", len(w))
	}
	for lag := 1; lag <= 4; lag++ {
		if w[lag-1] < 0.9 {
			t.Errorf("weight at lag %d h = %.3f, want about 1 (the same day)", lag, w[lag-1])
		}
	}
	for lag := 14; lag <= 24; lag++ {
		if w[lag-1] > 0.2 {
			t.Errorf("weight at lag %d h = %.3f, want about 0 (the next day, independent)", lag, w[lag-1])
		}
	}
}

func TestPreprocessingRoundTripsAndQueriesMatchWindows(t *testing.T) {
	s := generate(t, solar.DefaultSynthConfig())
	ds := makeDataset(t, s, solar.DefaultWindowConfig(), kIndex)
	doc, err := json.Marshal(ds.Prep)
	if err != nil {
		t.Fatal(err)
	}
	p, err := solar.ParsePreprocessing(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, ds.Prep) {
		t.Fatalf("preprocessing changed in JSON:\n%+v\n%+v", p, ds.Prep)
	}
	for _, i := range []int{0, 1000, ds.Test.N - 1} {
		q, err := p.Query(s, ds.Test.TargetStart[i])
		if err != nil {
			t.Fatal(err)
		}
		size := ds.Test.Steps * ds.Test.Features
		if !reflect.DeepEqual(q.X, ds.Test.X[i*size:(i+1)*size]) {
			t.Fatalf("query at %s reads other inputs than test window %d", ds.Test.TargetStart[i], i)
		}
		out := make([]float32, 24)
		for j := range out {
			out[j] = 0.7
		}
		for j, kw := range q.PowerKW(out) {
			if want := ds.Test.ForecastKW(i, j, 0.7); kw != want || q.CLIPERKW[j] != ds.Test.Baselines[solar.BaselineCLIPER][i*24+j] {
				t.Fatalf("query hour %d: %v kW (CLIPER %v), the window says %v (%v)", j, kw, q.CLIPERKW[j], want, ds.Test.Baselines[solar.BaselineCLIPER][i*24+j])
			}
		}
	}
	// By default the forecast starts right after the history.
	q, err := p.Query(s, time.Time{})
	if err != nil || !q.Times[0].Equal(s.Time[s.Len()-1].Add(time.Hour)) {
		t.Fatalf("default query: %v, %v", q, err)
	}
	bad := []struct {
		name, want string
		at         time.Time
		edit       func(*solar.Series)
	}{
		{"TooEarly", "a forecast from 2023-01-02T00:00:00Z needs the 48 hours from 2022-12-31T00:00:00Z", s.Time[24], nil},
		{"TooLate", "ends at 2024-12-30T23:00:00Z", s.Time[s.Len()-1].Add(2 * time.Hour), nil},
		{"OffTheHour", "not on the hour", s.Time[100].Add(time.Minute), nil},
		{"OtherSite", "trained for one at 48.100°, 11.600°", time.Time{}, func(s *solar.Series) { s.Site = &solar.Site{Latitude: 40, Longitude: 11.6} }},
		{"NoTemperature", "no temperature column", time.Time{}, func(s *solar.Series) { s.Temperature = nil }},
		{"BiggerPlant", "above the 5 kW", time.Time{}, func(s *solar.Series) { s.CapacityKW = 7 }},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c := *s
			if tc.edit != nil {
				tc.edit(&c)
			}
			_, err := p.Query(&c, tc.at)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	doc2 := strings.Replace(string(doc), `"version":1`, `"version":9`, 1)
	if _, err := solar.ParsePreprocessing([]byte(doc2)); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("version 9 parsed: %v", err)
	}
}

func TestScoresSumErrorsOverScoredHours(t *testing.T) {
	s := indexSeries(60, func(d int) float64 { return 0.3 + 0.1*float64(d%5) })
	ds := makeDataset(t, s, solar.WindowConfig{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2}, kIndex)
	w := ds.Test
	sc := solar.NewScores(5, 24)
	var n, abs, sq float64
	for i := range w.N {
		model := make([]float64, 24)
		for j := range model {
			model[j] = w.Actual[i*24+j] + 0.1 // a constant bias
			if w.Scored[i*24+j] {
				d := w.Baselines[solar.BaselineClimatology][i*24+j] - w.Actual[i*24+j]
				n, abs, sq = n+1, abs+math.Abs(d), sq+d*d
			}
		}
		sc.Add(w, i, model)
	}
	m := sc.All(solar.Model)
	if m.N != n || !near(m.MAE(), 0.1, 1e-9) || !near(m.RMSE(), 0.1, 1e-9) || !near(m.MBE(), 0.1, 1e-9) {
		t.Fatalf("model errors %+v over %v hours, want MAE = RMSE = MBE = 0.1", m, n)
	}
	clim := sc.All(1 + solar.BaselineClimatology)
	if !near(clim.MAE(), abs/n, 1e-9) || !near(clim.RMSE(), math.Sqrt(sq/n), 1e-9) {
		t.Fatalf("climatology MAE %v RMSE %v, want %v %v", clim.MAE(), clim.RMSE(), abs/n, math.Sqrt(sq/n))
	}
	if got, want := m.Skill(clim), 1-0.1/math.Sqrt(sq/n); !near(got, want, 1e-9) {
		t.Fatalf("skill %v, want %v", got, want)
	}
	var byHorizon, byHour, byMonth float64
	for j := range 24 {
		byHorizon += sc.ByHorizon(solar.Model, j).N
		byHour += sc.ByHour(solar.Model, j).N
	}
	for month := 1; month <= 12; month++ {
		byMonth += sc.ByMonth(solar.Model, month).N
	}
	if byHorizon != n || byHour != n || byMonth != n {
		t.Fatalf("hours by horizon %v, hour %v, month %v; want %v each", byHorizon, byHour, byMonth, n)
	}
	if sc.ByHour(solar.Model, 0).N != 0 {
		t.Fatalf("midnight UTC in Munich scored %v hours, want none (night)", sc.ByHour(solar.Model, 0).N)
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
			_, err := solar.MakeDataset(rampSeries(400), wc, kIndex)
			wantConfigError(t, err, tc.field)
		})
	}
	_, err := solar.MakeDataset(rampSeries(400), good, solar.ModelInputs{Target: "watts"})
	wantConfigError(t, err, "ModelInputs.Target")

	badSeries := []struct {
		name, want string
		edit       func(*solar.Series)
	}{
		{"Gap", "want exactly 1h", func(s *solar.Series) { s.Time[5] = s.Time[5].Add(time.Minute) }},
		{"NegativePower", "Power[3]", func(s *solar.Series) { s.Power[3] = -1 }},
		{"NaNPower", "Power[3]", func(s *solar.Series) { s.Power[3] = math.NaN() }},
		{"ShortColumn", "Temperature", func(s *solar.Series) { s.Temperature = make([]float64, 10) }},
		{"CloudRange", "Cloud[0]", func(s *solar.Series) { s.Cloud = make([]float64, s.Len()); s.Cloud[0] = 1.5 }},
		{"NoSite", "needs the plant's site", func(s *solar.Series) { s.Site = nil }},
		{"NoDaylight", "no measured daylight hour", func(s *solar.Series) { s.Estimated = make([]bool, s.Len()); fillTrue(s.Estimated) }},
		{"PowerAtNight", "power above 5% of capacity at 47 of its 201 night hours at 48.100°, 11.600° (the first at 2022-03-02T04:00:00Z): the plant's site is wrong or its times are not UTC",
			func(s *solar.Series) { s.Time = hourly(t0.Add(-3*time.Hour), s.Len()) }},
	}
	for _, tc := range badSeries {
		t.Run(tc.name, func(t *testing.T) {
			s := rampSeries(400)
			tc.edit(s)
			_, err := solar.MakeDataset(s, good, kIndex)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "ramp") {
				t.Errorf("error %v, want one naming the series and %q", err, tc.want)
			}
		})
	}
}

func fillTrue(b []bool) {
	for i := range b {
		b[i] = true
	}
}

// The error for a short series states the least length from which on every series works.
func TestMakeDatasetTooShort(t *testing.T) {
	for _, wc := range []solar.WindowConfig{
		solar.DefaultWindowConfig(),
		{Lookback: 24, Horizon: 24, TrainFrac: 0.6, ValFrac: 0.2},
		{Lookback: 36, Horizon: 7, TrainFrac: 0.9, ValFrac: 0.05},
	} {
		_, err := solar.MakeDataset(rampSeries(100), wc, kIndex)
		if err == nil {
			t.Fatalf("%+v: no error for 100 hours", wc)
		}
		msg := err.Error()
		i := strings.LastIndex(msg, "need at least ")
		var need int
		if _, scanErr := fmt.Sscanf(msg[max(i, 0):], "need at least %d hours", &need); i < 0 || scanErr != nil {
			t.Fatalf("error %q does not say how many hours are needed", msg)
		}
		for n := need; n < need+50; n++ {
			if _, err := solar.MakeDataset(rampSeries(n), wc, kIndex); err != nil {
				t.Fatalf("%+v: %d hours (the stated minimum is %d) fail: %v", wc, n, need, err)
			}
		}
		ds, err := solar.MakeDataset(rampSeries(need-1), wc, kIndex)
		if err == nil {
			t.Errorf("%+v: %d hours (one less than the minimum) work: %d/%d/%d windows", wc, need-1, ds.Train.N, ds.Val.N, ds.Test.N)
		}
	}
}
