package solar

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultMaxGapFillHours is the longest run of missing hours a reader fills
// by linear interpolation when CSVOptions.MaxGapFillHours is 0.
const DefaultMaxGapFillHours = 3

// Optional columns of a reader's rows.
const (
	colIrradiance = iota
	colTemperature
	colCloud
	colSunHeight // PVGIS' H_sun
	numOptional
)

// row is one parsed data row of a file.
type row struct {
	line      int
	t         time.Time
	power     float64              // kW
	opt       [numOptional]float64 // optional values; meaningful where the builder has the column
	estimated bool                 // the power was not measured (PVGIS' Int = 1)
}

// builder assembles a Series from rows in file order, enforcing the Series
// invariants and filling short gaps. Its errors are *ParseError.
type builder struct {
	file      string
	maxFill   int                 // longest gap filled; <= 0 fills none
	powerName string              // column names, for messages
	optName   [numOptional]string // "" when the file lacks the column
	s         Series
	optVals   [numOptional][]float64
	estimated []bool        // per hour appended; kept only if one is set
	offset    time.Duration // PVGIS: the first row's minutes past the hour
	prevLine  int
}

func (b *builder) errf(line int, format string, args ...any) *ParseError {
	return &ParseError{File: b.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// optErrf is errf for a problem that the CSVOptions field option could resolve.
func (b *builder) optErrf(option string, line int, format string, args ...any) *ParseError {
	e := b.errf(line, format, args...)
	e.Option = option
	return e
}

// parseNumber parses a numeric field; name is the column name for messages.
func (b *builder) parseNumber(line int, name, field string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSpace(field), 64)
	if err != nil {
		return 0, b.errf(line, "column %s: cannot parse %q as a number", name, field)
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, b.errf(line, "column %s: %v is not a finite number", name, v)
	}
	return v, nil
}

// add appends r after checking its values and its time against the previous
// row, filling a gap of at most maxFill hours first.
func (b *builder) add(r row) error {
	if r.power < 0 {
		return b.errf(r.line, "column %s: negative power %v", b.powerName, r.power)
	}
	if b.optName[colCloud] != "" {
		if c := r.opt[colCloud]; c < 0 || c > 1 {
			return b.errf(r.line, "column %s: cloud cover %v outside [0, 1] (give a fraction, not percent)", b.optName[colCloud], c)
		}
	}
	if n := len(b.s.Time); n > 0 {
		prev := b.s.Time[n-1]
		d := r.t.Sub(prev)
		switch {
		case d == 0:
			return b.errf(r.line, "duplicate timestamp %s (first at line %d)", stamp(r.t), b.prevLine)
		case d < 0:
			return b.errf(r.line, "timestamp %s is before %s at line %d: rows must be in chronological order", stamp(r.t), stamp(prev), b.prevLine)
		case d%time.Hour != 0:
			return b.errf(r.line, "timestamp %s is %v after %s at line %d: data must be hourly", stamp(r.t), d, stamp(prev), b.prevLine)
		case d > time.Hour:
			missing := int(d/time.Hour) - 1
			if missing > b.maxFill {
				return b.optErrf("MaxGapFillHours", r.line, "gap of %s between %s (line %d) and %s; at most %s are filled",
					hours(missing, "missing hour"), stamp(prev), b.prevLine, stamp(r.t), hours(max(b.maxFill, 0), "hour"))
			}
			b.fill(r, missing)
		}
	}
	b.append(r.t, r.power, r.opt, r.estimated)
	b.prevLine = r.line
	return nil
}

// fill appends missing hours linearly interpolated between the last row and
// r, and records the repair.
func (b *builder) fill(r row, missing int) {
	n := len(b.s.Time)
	t0, p0 := b.s.Time[n-1], b.s.Power[n-1]
	var o0 [numOptional]float64
	for k, vals := range b.optVals {
		if b.optName[k] != "" {
			o0[k] = vals[n-1]
		}
	}
	for k := 1; k <= missing; k++ {
		f := float64(k) / float64(missing+1)
		var o [numOptional]float64
		for j := range o {
			o[j] = o0[j] + f*(r.opt[j]-o0[j])
		}
		b.append(t0.Add(time.Duration(k)*time.Hour), p0+f*(r.power-p0), o, true)
	}
	b.s.Repairs = append(b.s.Repairs, Repair{File: b.file, Line: r.line, From: t0.Add(time.Hour), Hours: missing})
}

func (b *builder) append(t time.Time, power float64, opt [numOptional]float64, estimated bool) {
	b.s.Time = append(b.s.Time, t)
	b.s.Power = append(b.s.Power, power)
	b.estimated = append(b.estimated, estimated)
	for k := range b.optVals {
		if b.optName[k] != "" {
			b.optVals[k] = append(b.optVals[k], opt[k])
		}
	}
}

// finish returns the series. capacityKW <= 0 means unknown: the maximum
// observed power is used. site, when not nil, is the plant's location, and
// when the file has no irradiance it provides the clear-sky irradiance proxy.
func (b *builder) finish(capacityKW float64, site *Site) *Series {
	s := b.s
	s.Source = b.file
	s.Site = site
	s.Irradiance = b.optVals[colIrradiance]
	s.Temperature = b.optVals[colTemperature]
	s.Cloud = b.optVals[colCloud]
	s.SunHeight = b.optVals[colSunHeight]
	if slices.Contains(b.estimated, true) {
		s.Estimated = b.estimated
	}
	s.CapacityKW = capacityKW
	if capacityKW <= 0 {
		s.CapacityKW = 0
		for _, p := range s.Power {
			s.CapacityKW = math.Max(s.CapacityKW, p)
		}
	}
	if s.Irradiance == nil && site != nil {
		s.Irradiance = make([]float64, len(s.Time))
		for i, t := range s.Time {
			s.Irradiance[i] = ClearSky(t, site.Latitude, site.Longitude).POA
		}
		s.IrradianceClearSky = true
	}
	return &s
}

// stamp formats a time for messages.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// hours formats a count of hours for messages: "1 hour", "3 hours".
func hours(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
