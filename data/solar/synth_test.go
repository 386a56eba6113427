package solar_test

import (
	"math"
	"reflect"
	"testing"
	"time"

	"spottrain/data/solar"
)

func generate(t *testing.T, cfg solar.SynthConfig) *solar.Series {
	t.Helper()
	s, err := solar.Generate(cfg)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s
}

func TestGenerateInvariants(t *testing.T) {
	cfg := solar.DefaultSynthConfig()
	s := generate(t, cfg)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Len() != cfg.Days*24 || !s.Time[0].Equal(cfg.Start) || s.Time[0].Location() != time.UTC {
		t.Fatalf("%d hours from %v, want %d from %v UTC", s.Len(), s.Time[0], cfg.Days*24, cfg.Start)
	}
	if s.Source != "synthetic" || s.CapacityKW != cfg.CapacityKW || !s.IrradianceClearSky ||
		s.Irradiance == nil || s.Temperature == nil || s.Cloud == nil || s.Repairs != nil {
		t.Fatalf("metadata/columns wrong: source %q capacity %v clearsky %v", s.Source, s.CapacityKW, s.IrradianceClearSky)
	}
	var night, day, dayPositive int
	for i, ts := range s.Time {
		p := s.Power[i]
		if p < 0 || p > cfg.CapacityKW {
			t.Fatalf("%v: power %v outside [0, %v]", ts, p, cfg.CapacityKW)
		}
		if s.Cloud[i] < 0 || s.Cloud[i] > 1 {
			t.Fatalf("%v: cloud %v outside [0, 1]", ts, s.Cloud[i])
		}
		if s.Temperature[i] < -35 || s.Temperature[i] > 45 {
			t.Fatalf("%v: temperature %v °C implausible at 48°N", ts, s.Temperature[i])
		}
		if solar.SunAt(ts, cfg.Latitude, cfg.Longitude).ElevationDeg <= 0 {
			night++
			if p != 0 || s.Irradiance[i] != 0 {
				t.Fatalf("%v: sun below the horizon but power %v, irradiance %v", ts, p, s.Irradiance[i])
			}
			continue
		}
		day++
		if p > 0 {
			dayPositive++
		}
	}
	if night < s.Len()/3 || day < s.Len()/3 || dayPositive < day*9/10 {
		t.Errorf("night %d, day %d (with power %d) of %d hours", night, day, dayPositive, s.Len())
	}
}

// monthlyMeanDailyKWh returns the mean daily energy (kWh) per calendar month.
func monthlyMeanDailyKWh(s *solar.Series) map[time.Month]float64 {
	sum := map[time.Month]float64{}
	hours := map[time.Month]float64{}
	for i, ts := range s.Time {
		sum[ts.Month()] += s.Power[i]
		hours[ts.Month()]++
	}
	out := map[time.Month]float64{}
	for m := range sum {
		out[m] = sum[m] / hours[m] * 24
	}
	return out
}

func TestGenerateSeasons(t *testing.T) {
	tests := []struct {
		name                     string
		lat, lon                 float64
		summer, winter           time.Month
		minRatio                 float64
		minSummerKWhPerKWpPerDay float64
	}{
		{"Munich", 48.1, 11.6, time.June, time.December, 2, 3},
		{"Sydney", -33.87, 151.21, time.December, time.June, 1.2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := solar.DefaultSynthConfig()
			cfg.Latitude, cfg.Longitude = tc.lat, tc.lon
			m := monthlyMeanDailyKWh(generate(t, cfg))
			ratio := m[tc.summer] / m[tc.winter]
			if ratio < tc.minRatio {
				t.Errorf("%v %.2f kWh/day vs %v %.2f: ratio %.2f, want > %v", tc.summer, m[tc.summer], tc.winter, m[tc.winter], ratio, tc.minRatio)
			}
			if y := m[tc.summer] / cfg.CapacityKW; y < tc.minSummerKWhPerKWpPerDay || y > 7 {
				t.Errorf("%v yield %.2f kWh/kWp/day, want %v..7", tc.summer, y, tc.minSummerKWhPerKWpPerDay)
			}
		})
	}
}

func TestGenerateCloudsVary(t *testing.T) {
	cfg := solar.DefaultSynthConfig()
	s := generate(t, cfg)
	// Daily energy relative to a cloudless day with the same losses.
	var dark, bright int
	for d := range cfg.Days {
		var e, clear float64
		for i := d * 24; i < (d+1)*24; i++ {
			e += s.Power[i]
			clear += cfg.CapacityKW * s.Irradiance[i] / 1000 * 0.86
		}
		switch r := e / clear; {
		case r < 0.4:
			dark++
		case r > 0.8:
			bright++
		}
	}
	if dark < cfg.Days/10 || bright < cfg.Days/5 {
		t.Errorf("%d dark days (< 40%% of clear sky) and %d bright ones (> 80%%) of %d: weather does not vary enough", dark, bright, cfg.Days)
	}
}

// meanAbsStep returns the mean absolute hour-to-hour change of x.
func meanAbsStep(x []float64) float64 {
	var sum float64
	for i := 1; i < len(x); i++ {
		sum += math.Abs(x[i] - x[i-1])
	}
	return sum / float64(len(x)-1)
}

func TestGenerateCloudPersistence(t *testing.T) {
	cfg := solar.DefaultSynthConfig()
	cfg.Days = 365
	cfg.CloudPersistence = 0
	loose := meanAbsStep(generate(t, cfg).Cloud)
	cfg.CloudPersistence = 0.95
	tight := meanAbsStep(generate(t, cfg).Cloud)
	if !(tight < loose/3) {
		t.Errorf("mean hourly cloud change %.3f at persistence 0.95 vs %.3f at 0, want less than a third", tight, loose)
	}
}

func TestGenerateDeterministic(t *testing.T) {
	cfg := solar.DefaultSynthConfig()
	cfg.Days = 60
	a, b := generate(t, cfg), generate(t, cfg)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same config and seed gave different series")
	}
	cfg.Seed++
	c := generate(t, cfg)
	if reflect.DeepEqual(a.Power, c.Power) || reflect.DeepEqual(a.Cloud, c.Cloud) || reflect.DeepEqual(a.Temperature, c.Temperature) {
		t.Fatal("different seeds gave identical power, cloud or temperature")
	}
	if !reflect.DeepEqual(a.Irradiance, c.Irradiance) {
		t.Fatal("clear-sky irradiance depends on the seed")
	}
}

func TestGenerateNoise(t *testing.T) {
	cfg := solar.DefaultSynthConfig()
	cfg.Days = 30
	cfg.Noise = 0
	quiet := generate(t, cfg)
	cfg.Noise = 0.1
	noisy := generate(t, cfg)
	var sumSq, n float64
	for i, p := range quiet.Power {
		if p > 0.5 && p < 0.9*cfg.CapacityKW {
			r := noisy.Power[i]/p - 1
			sumSq += r * r
			n++
		}
	}
	if rel := math.Sqrt(sumSq / n); rel < 0.07 || rel > 0.13 {
		t.Errorf("relative noise std %.3f, want about 0.1", rel)
	}
}

func TestGenerateInvalidConfig(t *testing.T) {
	tests := []struct {
		field string
		edit  func(*solar.SynthConfig)
	}{
		{"SynthConfig.Latitude", func(c *solar.SynthConfig) { c.Latitude = 91 }},
		{"SynthConfig.Latitude", func(c *solar.SynthConfig) { c.Latitude = math.NaN() }},
		{"SynthConfig.Longitude", func(c *solar.SynthConfig) { c.Longitude = -181 }},
		{"SynthConfig.Start", func(c *solar.SynthConfig) { c.Start = time.Time{} }},
		{"SynthConfig.Start", func(c *solar.SynthConfig) { c.Start = c.Start.Add(30 * time.Minute) }},
		{"SynthConfig.Days", func(c *solar.SynthConfig) { c.Days = 0 }},
		{"SynthConfig.Days", func(c *solar.SynthConfig) { c.Days = 1 << 30 }},
		{"SynthConfig.CapacityKW", func(c *solar.SynthConfig) { c.CapacityKW = 0 }},
		{"SynthConfig.CapacityKW", func(c *solar.SynthConfig) { c.CapacityKW = math.Inf(1) }},
		{"SynthConfig.CloudPersistence", func(c *solar.SynthConfig) { c.CloudPersistence = 1 }},
		{"SynthConfig.CloudPersistence", func(c *solar.SynthConfig) { c.CloudPersistence = -0.1 }},
		{"SynthConfig.Noise", func(c *solar.SynthConfig) { c.Noise = -0.01 }},
		{"SynthConfig.Noise", func(c *solar.SynthConfig) { c.Noise = math.NaN() }},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			cfg := solar.DefaultSynthConfig()
			tc.edit(&cfg)
			s, err := solar.Generate(cfg)
			if s != nil {
				t.Error("got a series with an error")
			}
			wantConfigError(t, err, tc.field)
		})
	}
	t.Run("ZonedStartIsFine", func(t *testing.T) {
		cfg := solar.DefaultSynthConfig()
		cfg.Days = 1
		cfg.Start = time.Date(2023, time.January, 1, 5, 30, 0, 0, time.FixedZone("IST", 5*3600+1800))
		s := generate(t, cfg)
		if want := time.Date(2023, time.January, 1, 0, 0, 0, 0, time.UTC); !s.Time[0].Equal(want) || s.Time[0].Location() != time.UTC {
			t.Errorf("first hour %v, want %v", s.Time[0], want)
		}
	})
}
