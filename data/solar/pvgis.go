package solar

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// pvgisTimeLayout is the format of PVGIS' time column, in UTC.
const pvgisTimeLayout = "20060102:1504"

// ReadPVGIS reads the hourly CSV that PVGIS' seriescalc tool exports with PV
// calculation on (outputformat=csv, pvcalculation=1) for a fixed plane, e.g.
//
//	Latitude (decimal degrees):	45.000
//	Longitude (decimal degrees):	8.000
//	...
//	Nominal power of the PV system (c-Si) (kWp):	1.0
//	time,P,G(i),H_sun,T2m,WS10m,Int
//	20200101:0010,0.0,0.0,0.0,2.74,1.1,0.0
//	...
//	(blank line, then a footer describing the columns)
//
// Metadata lines above the header give the site (Site), the plane (Plane,
// from "Slope" and "Azimuth", PVGIS' aspect: 0 south, 90 west) and nameplate
// (CapacityKW; the maximum observed power when absent). Data rows run from
// the header to the first blank line; the footer after it is skipped, but a
// data row there is an error. Times are UTC; each row maps to the start of
// its hour, and PVGIS' minute (e.g. :10, the instant its values are for)
// becomes SampleOffset. P (W) becomes kW; Irradiance is the measured
// plane-of-array G(i), or Gb(i)+Gd(i)+Gr(i) in an export with components, or
// else the clear-sky proxy at the file's coordinates; Temperature is T2m;
// SunHeight is H_sun; rows with Int = 1 (reconstructed radiation) are
// Estimated; Cloud is nil. Gaps of up to DefaultMaxGapFillHours are filled
// (see Series.Repairs). Errors are as for ReadCSV.
func ReadPVGIS(path string) (*Series, error) {
	return readPVGIS(path, DefaultMaxGapFillHours, 0)
}

// readPVGIS is ReadPVGIS with the gap limit and nameplate override of Open
// (capacityKW 0: from the file).
func readPVGIS(path string, maxFill int, capacityKW float64) (*Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read PVGIS CSV: %w", err)
	}
	defer f.Close()

	b := &builder{file: path, maxFill: maxFill, powerName: "P"}
	var (
		meta                pvgisMeta
		header              []string // nil until the header line; its column 0 is "time"
		cols                pvgisColumns
		headerLine, dataEnd int // line of the header; line of the blank line ending the data
	)
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		switch {
		case header == nil && strings.HasPrefix(text, "time,"):
			header, headerLine = strings.Split(text, ","), line
			cols = pvgisHeader(header)
			if cols.power < 0 {
				return nil, b.errf(line, "no column P in header %q: export with PV calculation (pvcalculation=1)", text)
			}
			b.optName[colIrradiance] = cols.irrName
			if cols.temp >= 0 {
				b.optName[colTemperature] = "T2m"
			}
			if cols.sun >= 0 {
				b.optName[colSunHeight] = "H_sun"
			}
		case header == nil:
			if msg := meta.parse(text); msg != "" {
				return nil, b.errf(line, "%s", msg)
			}
		case dataEnd == 0 && strings.TrimSpace(text) == "":
			dataEnd = line
		case dataEnd == 0:
			rw, err := b.pvgisRow(line, text, header, cols)
			if err != nil {
				return nil, err
			}
			if err := b.add(rw); err != nil {
				return nil, err
			}
		case looksLikePVGISRow(text): // in the footer
			return nil, b.errf(line, "data row after the blank line at line %d that ended the data", dataEnd)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read PVGIS CSV %s: %w", path, err)
	}
	switch {
	case line == 0:
		return nil, b.errf(0, "empty file")
	case header == nil:
		return nil, b.errf(0, "no header line starting with \"time,\": not a PVGIS hourly CSV export")
	case len(b.s.Time) == 0:
		return nil, b.errf(headerLine, "no data rows after the header")
	}
	if capacityKW <= 0 {
		capacityKW = meta.kwp
	}
	var site *Site
	if meta.haveLat && meta.haveLon {
		site = &Site{Latitude: meta.lat, Longitude: meta.lon}
	}
	s := b.finish(capacityKW, site)
	if meta.haveSlope && meta.haveAspect {
		s.Plane = &Plane{TiltDeg: meta.slope, AzimuthDeg: meta.aspect}
	}
	s.SampleOffset = b.offset
	return s, nil
}

// pvgisMeta is what the metadata lines above the header tell.
type pvgisMeta struct {
	lat, lon, kwp, slope, aspect            float64
	haveLat, haveLon, haveSlope, haveAspect bool
}

// parse reads one metadata line ("Key: value"); lines it does not use are
// ignored. It returns a message for an unusable value, else "".
func (m *pvgisMeta) parse(text string) string {
	key, val, ok := strings.Cut(text, ":")
	if !ok {
		return ""
	}
	key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
	var (
		dst    *float64
		lo, hi float64
	)
	switch {
	case strings.HasPrefix(key, "latitude"):
		dst, lo, hi, m.haveLat = &m.lat, -90, 90, true
	case strings.HasPrefix(key, "longitude"):
		dst, lo, hi, m.haveLon = &m.lon, -180, 180, true
	case strings.Contains(key, "(kwp)"): // "Nominal power of the PV system (c-Si) (kWp)"
		dst, lo, hi = &m.kwp, 0, math.Inf(1)
	case key == "slope": // "Slope: 35 deg. (optimum)"
		dst, lo, hi, m.haveSlope = &m.slope, 0, 90, true
		val, _, _ = strings.Cut(val, " ")
	case key == "azimuth": // "Azimuth: -5 deg. "
		dst, lo, hi, m.haveAspect = &m.aspect, -180, 180, true
		val, _, _ = strings.Cut(val, " ")
	default:
		return ""
	}
	v, err := strconv.ParseFloat(val, 64)
	if err != nil || !(v >= lo && v <= hi) || math.IsInf(v, 0) {
		return fmt.Sprintf("metadata %q: %q is not a finite number in [%v, %v]", key, val, lo, hi)
	}
	*dst = v
	return ""
}

// pvgisColumns locates the columns used in a PVGIS header.
type pvgisColumns struct {
	power, temp, sun, est int    // indices of P, T2m, H_sun and Int; -1 when absent
	irr                   []int  // columns summed into the irradiance; nil when absent
	irrName               string // their name(s), for messages; "" when absent
}

func pvgisHeader(header []string) pvgisColumns {
	c := pvgisColumns{power: -1, temp: -1, sun: -1, est: -1}
	var components []int
	for i, name := range header {
		switch strings.TrimSpace(name) {
		case "P":
			c.power = i
		case "T2m":
			c.temp = i
		case "H_sun":
			c.sun = i
		case "Int":
			c.est = i
		case "G(i)":
			c.irr, c.irrName = []int{i}, "G(i)"
		case "Gb(i)", "Gd(i)", "Gr(i)":
			components = append(components, i)
		}
	}
	if c.irr == nil && len(components) == 3 {
		c.irr, c.irrName = components, "Gb(i)+Gd(i)+Gr(i)"
	}
	return c
}

// pvgisRow parses one data line.
func (b *builder) pvgisRow(line int, text string, header []string, c pvgisColumns) (row, error) {
	fields := strings.Split(text, ",")
	if len(fields) != len(header) {
		return row{}, b.errf(line, "%d fields, want %d as in the header", len(fields), len(header))
	}
	t, err := time.Parse(pvgisTimeLayout, strings.TrimSpace(fields[0]))
	if err != nil {
		return row{}, b.errf(line, "column time: cannot parse %q as a PVGIS time (YYYYMMDD:HHMM)", fields[0])
	}
	rw := row{line: line, t: t.Truncate(time.Hour)}
	if len(b.s.Time) == 0 {
		b.offset = t.Sub(rw.t)
	}
	if rw.power, err = b.parseNumber(line, "P", fields[c.power]); err != nil {
		return row{}, err
	}
	rw.power /= 1000 // W -> kW
	for _, i := range c.irr {
		v, err := b.parseNumber(line, strings.TrimSpace(header[i]), fields[i])
		if err != nil {
			return row{}, err
		}
		rw.opt[colIrradiance] += v
	}
	if c.temp >= 0 {
		if rw.opt[colTemperature], err = b.parseNumber(line, "T2m", fields[c.temp]); err != nil {
			return row{}, err
		}
	}
	if c.sun >= 0 {
		if rw.opt[colSunHeight], err = b.parseNumber(line, "H_sun", fields[c.sun]); err != nil {
			return row{}, err
		}
	}
	if c.est >= 0 {
		v, err := b.parseNumber(line, "Int", fields[c.est])
		if err != nil {
			return row{}, err
		}
		rw.estimated = v != 0
	}
	return rw, nil
}

// looksLikePVGISRow reports whether a line starts like a PVGIS data row
// ("YYYYMMDD:HHMM,").
func looksLikePVGISRow(s string) bool {
	if len(s) < 14 || s[8] != ':' || s[13] != ',' {
		return false
	}
	for i, c := range s[:13] {
		if i != 8 && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
