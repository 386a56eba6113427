package solar

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// Site is a location, in degrees: latitude north positive, longitude east
// positive.
type Site struct {
	Latitude, Longitude float64
}

// CSVOptions configures ReadCSV (and Open). The zero value reads a
// comma-separated file with columns "timestamp" and "power_kw".
type CSVOptions struct {
	TimeColumn   string  // name of the timestamp column; default "timestamp"
	PowerColumn  string  // name of the power column; default "power_kw"
	PowerInWatts bool    // the power column is in W (converted to kW)
	Comma        rune    // field separator; default ','
	CapacityKW   float64 // plant nameplate in kW; 0 = unknown, use the maximum observed power
	// Site, when set and the file has no irradiance column, is used to
	// compute a clear-sky irradiance proxy (see Series.IrradianceClearSky).
	Site *Site
	// MaxGapFillHours is the longest run of missing hours filled by linear
	// interpolation (each fill is recorded in Series.Repairs); a longer gap
	// is an error. 0 means DefaultMaxGapFillHours; negative fills none.
	MaxGapFillHours int
}

// Column names, compared case-insensitively after trimming spaces, that
// ReadCSV recognizes as optional weather columns. A file may have at most
// one column of each kind.
var (
	irradianceColumns  = []string{"irradiance", "ghi", "poa"}
	temperatureColumns = []string{"temperature", "temp_air", "t2m"}
	cloudColumns       = []string{"cloud", "cloud_cover"}
)

// csvTimeLayouts are the accepted timestamp formats. Layouts without a zone
// are read as UTC.
var csvTimeLayouts = []string{
	time.RFC3339,
	"2006-01-02 15:04:05Z07:00",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
}

// withDefaults validates opt and fills its defaults.
func (opt CSVOptions) withDefaults() (CSVOptions, error) {
	if opt.TimeColumn == "" {
		opt.TimeColumn = "timestamp"
	}
	if opt.PowerColumn == "" {
		opt.PowerColumn = "power_kw"
	}
	if opt.Comma == 0 {
		opt.Comma = ','
	}
	if opt.MaxGapFillHours == 0 {
		opt.MaxGapFillHours = DefaultMaxGapFillHours
	}
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: "CSVOptions." + field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !(opt.CapacityKW >= 0) || math.IsInf(opt.CapacityKW, 1):
		return opt, bad("CapacityKW", "must be a finite number >= 0, got %v", opt.CapacityKW)
	case opt.Site != nil && !(opt.Site.Latitude >= -90 && opt.Site.Latitude <= 90):
		return opt, bad("Site.Latitude", "must be in [-90, 90] degrees, got %v", opt.Site.Latitude)
	case opt.Site != nil && !(opt.Site.Longitude >= -180 && opt.Site.Longitude <= 180):
		return opt, bad("Site.Longitude", "must be in [-180, 180] degrees, got %v", opt.Site.Longitude)
	}
	return opt, nil
}

// ReadCSV reads an hourly PV history from a CSV file with a header row.
//
// Columns: the timestamp column (CSVOptions.TimeColumn) in one of the
// formats RFC3339, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05",
// "2006-01-02T15:04:05", "2006-01-02T15:04" or "2006-01-02 15:04" (no zone
// means UTC); the power column (CSVOptions.PowerColumn), kW unless
// PowerInWatts; optionally irradiance (irradiance, ghi, poa; W/m²),
// temperature (temperature, temp_air, t2m; °C) and cloud cover (cloud,
// cloud_cover; fraction in [0, 1]); other columns are ignored.
//
// Rows must be in chronological order and hourly: consecutive timestamps
// differ by a whole number of hours (sub-hourly data is rejected, not
// averaged); gaps up to MaxGapFillHours are filled by linear interpolation.
// Empty lines are skipped. A bad row, header or empty file is a *ParseError
// naming the file and line; an unreadable file is an error wrapping the
// *fs.PathError.
func ReadCSV(path string, opt CSVOptions) (*Series, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read PV CSV: %w", err)
	}
	defer f.Close()

	br := bufio.NewReader(f)
	if bom, _ := br.Peek(3); string(bom) == "\ufeff" {
		br.Discard(3) // a UTF-8 byte order mark, as Excel writes
	}
	r := csv.NewReader(br)
	r.Comma = opt.Comma
	r.FieldsPerRecord = -1 // counted below, for a clearer message
	r.TrimLeadingSpace = true
	b := &builder{file: path, maxFill: opt.MaxGapFillHours}

	header, err := r.Read()
	if err == io.EOF {
		return nil, b.errf(0, "empty file: want a header row with columns %q and %q", opt.TimeColumn, opt.PowerColumn)
	}
	if err != nil {
		return nil, b.csvErr(err)
	}
	headerLine, _ := r.FieldPos(0)
	timeIdx, powerIdx := -1, -1
	optIdx := [numOptional]int{-1, -1, -1, -1}
	kinds := [numOptional][]string{irradianceColumns, temperatureColumns, cloudColumns, nil} // no sun height in a CSV
	for i, name := range header {
		name = strings.TrimSpace(name)
		header[i] = name
		switch {
		case strings.EqualFold(name, opt.TimeColumn):
			timeIdx = i
			continue
		case strings.EqualFold(name, opt.PowerColumn):
			powerIdx = i
			continue
		}
		for k, names := range kinds {
			if !containsFold(names, name) {
				continue
			}
			if optIdx[k] >= 0 {
				return nil, b.errf(headerLine, "columns %q and %q hold the same quantity; keep one", header[optIdx[k]], name)
			}
			optIdx[k] = i
			b.optName[k] = name
		}
	}
	if timeIdx < 0 {
		return nil, b.optErrf("TimeColumn", headerLine, "no timestamp column %q in header %q", opt.TimeColumn, strings.Join(header, ","))
	}
	if powerIdx < 0 {
		return nil, b.optErrf("PowerColumn", headerLine, "no power column %q in header %q", opt.PowerColumn, strings.Join(header, ","))
	}
	b.powerName = header[powerIdx]

	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, b.csvErr(err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			return nil, b.errf(line, "%d fields, want %d as in the header", len(rec), len(header))
		}
		rw := row{line: line}
		if rw.t, err = ParseTime(rec[timeIdx]); err != nil {
			return nil, b.errf(line, "column %s: %v", header[timeIdx], err)
		}
		if rw.power, err = b.parseNumber(line, header[powerIdx], rec[powerIdx]); err != nil {
			return nil, err
		}
		if opt.PowerInWatts {
			rw.power /= 1000
		}
		for k, i := range optIdx {
			if i < 0 {
				continue
			}
			if rw.opt[k], err = b.parseNumber(line, header[i], rec[i]); err != nil {
				return nil, err
			}
		}
		if err := b.add(rw); err != nil {
			return nil, err
		}
	}
	if len(b.s.Time) == 0 {
		return nil, b.errf(headerLine, "no data rows after the header")
	}
	return b.finish(opt.CapacityKW, opt.Site), nil
}

// csvErr converts an error of encoding/csv to a *ParseError.
func (b *builder) csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return b.errf(pe.Line, "%v", pe.Err)
	}
	return fmt.Errorf("read PV CSV %s: %w", b.file, err)
}

// ParseTime parses a timestamp in one of the formats ReadCSV accepts (no zone: UTC) and returns
// it in UTC.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range csvTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse %q as a timestamp (want e.g. 2006-01-02T15:04:05Z or 2006-01-02 15:04)", s)
}

func containsFold(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
