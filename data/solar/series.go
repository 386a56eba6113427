package solar

import (
	"fmt"
	"math"
	"time"
)

// Series is an hourly PV power history. Series returned by this package
// satisfy Validate; a hand-built Series should be checked with it.
type Series struct {
	Source     string      // "synthetic" or the path of the file read
	Time       []time.Time // UTC, strictly increasing by exactly one hour
	Power      []float64   // kW, finite and >= 0; Power[i] belongs to the hour starting at Time[i] (instantaneous or hourly mean, as the source records it)
	CapacityKW float64     // nameplate power, or the maximum observed power when the source does not say

	// Irradiance is in W/m², nil when unknown. It is measured irradiance
	// (GHI or plane of array, as the source gives it) unless
	// IrradianceClearSky is set, in which case it is the computed clear-sky
	// POA of ClearSky, a proxy that needs only the site's coordinates.
	Irradiance         []float64
	IrradianceClearSky bool

	Temperature []float64 // ambient air temperature, °C, nil when unknown
	Cloud       []float64 // cloud cover fraction in [0, 1], nil when unknown
	Repairs     []Repair  // repairs applied while reading a file, in file order; nil when none

	// Site is where the plant is; nil when the source does not say (a CSV read without
	// CSVOptions.Site).
	Site *Site
	// Plane is how the modules face; nil when the source does not say (then the clear-sky model
	// takes DefaultPlane at Site).
	Plane *Plane
	// SampleOffset is where in its hour each value was taken: PVGIS stamps its hourly values at a
	// minute past the hour (e.g. 10 min), other sources at the hour (0).
	SampleOffset time.Duration
	// SunHeight is the sun's elevation in degrees at each sample as the source computed it
	// (PVGIS' H_sun, 0 at night), nil when absent.
	SunHeight []float64
	// Estimated marks the hours whose power was not measured: gaps a reader filled and PVGIS rows
	// with Int = 1 (reconstructed radiation). nil when there are none. A forecaster should
	// neither learn from them nor be scored on them.
	Estimated []bool
}

// IsEstimated reports whether hour i's power was not measured (see Estimated).
func (s *Series) IsEstimated(i int) bool { return s.Estimated != nil && s.Estimated[i] }

// Len returns the number of hours in the series.
func (s *Series) Len() int { return len(s.Time) }

// Validate checks the invariants documented on Series (lengths, one-hour
// spacing, finite values in range; not the time zone, as features are
// computed in UTC anyway) and returns an error naming the first violation,
// or nil.
func (s *Series) Validate() error {
	n := len(s.Time)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("invalid series %q: %s", s.Source, fmt.Sprintf(format, args...))
	}
	if len(s.Power) != n {
		return bad("%d power values for %d times", len(s.Power), n)
	}
	for i := 1; i < n; i++ {
		if d := s.Time[i].Sub(s.Time[i-1]); d != time.Hour {
			return bad("Time[%d] is %v after Time[%d], want exactly 1h", i, d, i-1)
		}
	}
	if !(s.CapacityKW >= 0) || math.IsInf(s.CapacityKW, 1) {
		return bad("CapacityKW %v is not a finite number >= 0", s.CapacityKW)
	}
	for i, p := range s.Power {
		if !(p >= 0) || math.IsInf(p, 1) {
			return bad("Power[%d] = %v, want a finite number >= 0", i, p)
		}
	}
	optional := []struct {
		name     string
		v        []float64
		min, max float64
	}{
		{"Irradiance", s.Irradiance, math.Inf(-1), math.Inf(1)},
		{"Temperature", s.Temperature, math.Inf(-1), math.Inf(1)},
		{"Cloud", s.Cloud, 0, 1},
		{"SunHeight", s.SunHeight, -90, 90},
	}
	if s.Estimated != nil && len(s.Estimated) != n {
		return bad("%d Estimated flags for %d times", len(s.Estimated), n)
	}
	for _, o := range optional {
		if o.v == nil {
			continue
		}
		if len(o.v) != n {
			return bad("%d %s values for %d times", len(o.v), o.name, n)
		}
		for i, x := range o.v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return bad("%s[%d] = %v, want a finite number", o.name, i, x)
			}
			if x < o.min || x > o.max {
				return bad("%s[%d] = %v, want a value in [%v, %v]", o.name, i, x, o.min, o.max)
			}
		}
	}
	return nil
}

// Repair records one change a reader made to the data of a file.
// The only repair is filling a gap of missing hours.
type Repair struct {
	File  string    // path of the file
	Line  int       // line of the first row after the gap
	From  time.Time // first filled hour (UTC)
	Hours int       // number of consecutive filled hours
}

// String describes the repair in one line, in the "file:line: ..." form of
// ParseError.
func (r Repair) String() string {
	span := stamp(r.From)
	if r.Hours > 1 {
		span += ".." + stamp(r.From.Add(time.Duration(r.Hours-1)*time.Hour))
	}
	return fmt.Sprintf("%s:%d: filled %s %s by linear interpolation", r.File, r.Line, hours(r.Hours, "missing hour"), span)
}
