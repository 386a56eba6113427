package solar_test

import (
	"errors"
	"io/fs"
	"math"
	"strings"
	"testing"
	"time"

	"spottrain/data/solar"
	"spottrain/internal/testutil"
)

func readCSV(t *testing.T, path string, opt solar.CSVOptions) *solar.Series {
	t.Helper()
	s, err := solar.ReadCSV(path, opt)
	if err != nil {
		t.Fatalf("ReadCSV: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("ReadCSV returned an invalid series: %v", err)
	}
	return s
}

func TestReadCSVFixture(t *testing.T) {
	const path = "testdata/pv_hourly.csv"
	s := readCSV(t, path, solar.CSVOptions{})
	if s.Len() != 48 || s.Source != path {
		t.Fatalf("%d hours from %q, want 48 from %q", s.Len(), s.Source, path)
	}
	if want := time.Date(2021, time.March, 20, 0, 0, 0, 0, time.UTC); !s.Time[0].Equal(want) || s.Time[0].Location() != time.UTC {
		t.Errorf("first time %v, want %v", s.Time[0], want)
	}
	// Line 13: 2021-03-20 11:00:00,2.210,818.7,9.3,0.10,INV-1
	if s.Power[11] != 2.210 || s.Irradiance[11] != 818.7 || s.Temperature[11] != 9.3 || s.Cloud[11] != 0.10 {
		t.Errorf("hour 11: power %v irradiance %v temperature %v cloud %v", s.Power[11], s.Irradiance[11], s.Temperature[11], s.Cloud[11])
	}
	if s.IrradianceClearSky || s.Repairs != nil {
		t.Errorf("clear-sky %v, repairs %v: want measured irradiance and no repairs", s.IrradianceClearSky, s.Repairs)
	}
	if s.CapacityKW != 2.210 {
		t.Errorf("capacity %v, want the maximum observed power 2.210", s.CapacityKW)
	}
}

func TestReadCSVOptions(t *testing.T) {
	t.Run("CustomColumnsWattsSemicolon", func(t *testing.T) {
		path := testutil.WriteTemp(t, "w.csv", "Zeit;AC_W;Temperature\n2021-06-01T10:00;1500;20\n2021-06-01T11:00;2500.5;21\n")
		s := readCSV(t, path, solar.CSVOptions{TimeColumn: "zeit", PowerColumn: "ac_w", PowerInWatts: true, Comma: ';', CapacityKW: 4})
		if s.Len() != 2 || len(s.Temperature) != 2 {
			t.Fatalf("%d hours, temperature %v", s.Len(), s.Temperature)
		}
		if s.Power[0] != 1.5 || s.Power[1] != 2.5005 || s.CapacityKW != 4 || s.Temperature[1] != 21 || s.Irradiance != nil || s.Cloud != nil {
			t.Errorf("got power %v capacity %v temperature %v irradiance %v cloud %v", s.Power, s.CapacityKW, s.Temperature, s.Irradiance, s.Cloud)
		}
	})
	t.Run("SiteGivesClearSkyProxy", func(t *testing.T) {
		path := testutil.WriteTemp(t, "site.csv", "timestamp,power_kw\n2021-06-01 00:00,0\n2021-06-01 01:00,0\n2021-06-01 11:00,3\n")
		s := readCSV(t, path, solar.CSVOptions{Site: &solar.Site{Latitude: 48.1, Longitude: 11.6}, MaxGapFillHours: 9})
		if !s.IrradianceClearSky || len(s.Irradiance) != s.Len() {
			t.Fatalf("clear-sky %v, %d irradiance values for %d hours", s.IrradianceClearSky, len(s.Irradiance), s.Len())
		}
		want := solar.ClearSky(s.Time[11], 48.1, 11.6).POA
		if s.Irradiance[0] != 0 || s.Irradiance[11] != want || want < 500 {
			t.Errorf("irradiance at 0h %v and 11h %v, want 0 and %v", s.Irradiance[0], s.Irradiance[11], want)
		}
	})
	t.Run("MeasuredIrradianceWinsOverSite", func(t *testing.T) {
		s := readCSV(t, "testdata/pv_hourly.csv", solar.CSVOptions{Site: &solar.Site{Latitude: 48.1, Longitude: 11.6}})
		if s.IrradianceClearSky || s.Irradiance[11] != 818.7 {
			t.Errorf("clear-sky %v irradiance %v, want the measured column", s.IrradianceClearSky, s.Irradiance[11])
		}
	})
	t.Run("QuotedFieldsBOMAndSpaces", func(t *testing.T) {
		path := testutil.WriteTemp(t, "q.csv", "\ufeff\"timestamp\", \"power_kw\",Cloud_Cover\n\"2021-06-01 10:00:00\", 1.25 , 0.5\n\n2021-06-01 11:00:00,2,1\n")
		s := readCSV(t, path, solar.CSVOptions{})
		if s.Len() != 2 || s.Power[0] != 1.25 || s.Cloud[1] != 1 {
			t.Errorf("got %d hours, power %v, cloud %v", s.Len(), s.Power, s.Cloud)
		}
	})
	t.Run("BadOptions", func(t *testing.T) {
		for field, opt := range map[string]solar.CSVOptions{
			"CSVOptions.CapacityKW":     {CapacityKW: -1},
			"CSVOptions.Site.Latitude":  {Site: &solar.Site{Latitude: 100}},
			"CSVOptions.Site.Longitude": {Site: &solar.Site{Longitude: math.NaN()}},
		} {
			_, err := solar.ReadCSV("testdata/pv_hourly.csv", opt)
			wantConfigError(t, err, field)
		}
	})
}

func TestReadCSVTimestampFormats(t *testing.T) {
	want := time.Date(2021, time.June, 1, 10, 0, 0, 0, time.UTC)
	for _, stamp := range []string{
		"2021-06-01T10:00:00Z",
		"2021-06-01T12:00:00+02:00",
		"2021-06-01T10:00:00.000Z",
		"2021-06-01 12:00:00+02:00",
		"2021-06-01 10:00:00",
		"2021-06-01T10:00:00",
		"2021-06-01T10:00",
		"2021-06-01 10:00",
	} {
		t.Run(stamp, func(t *testing.T) {
			path := testutil.WriteTemp(t, "ts.csv", "timestamp,power_kw\n"+stamp+",1\n")
			s := readCSV(t, path, solar.CSVOptions{})
			if !s.Time[0].Equal(want) || s.Time[0].Location() != time.UTC {
				t.Errorf("parsed %v, want %v", s.Time[0], want)
			}
		})
	}
	t.Run("HalfHourZoneStaysHourly", func(t *testing.T) {
		// India (UTC+05:30): hourly local stamps are hourly in UTC too.
		path := testutil.WriteTemp(t, "in.csv", "timestamp,power_kw\n2021-06-01T10:00:00+05:30,1\n2021-06-01T11:00:00+05:30,2\n")
		s := readCSV(t, path, solar.CSVOptions{})
		if want := time.Date(2021, time.June, 1, 4, 30, 0, 0, time.UTC); !s.Time[0].Equal(want) || s.Len() != 2 {
			t.Errorf("got %v (%d hours), want %v", s.Time[0], s.Len(), want)
		}
	})
}

const csvHeader = "timestamp,power_kw,temperature,cloud\n"

// csvRows returns n good hourly rows starting 2020-01-01T00:00Z; row i is on
// line i+2 of a file with csvHeader.
func csvRows(n int) []string {
	rows := make([]string, n)
	for i := range rows {
		rows[i] = time.Date(2020, time.January, 1, i, 0, 0, 0, time.UTC).Format("2006-01-02 15:04") + ",1.5,10,0.5"
	}
	return rows
}

func TestReadCSVBadRows(t *testing.T) {
	tests := []struct {
		name      string
		line      int // 1-based line of the row edited, and of the error
		row       string
		fragments []string
	}{
		{"TooFewFields", 5, "2020-01-01 03:00,1.5,10", []string{"3 fields, want 4"}},
		{"TooManyFields", 5, "2020-01-01 03:00,1.5,10,0.5,x", []string{"5 fields, want 4"}},
		{"BadNumber", 6, "2020-01-01 04:00,1,5,10,0.5", []string{"5 fields"}},
		{"UnparsablePower", 6, "2020-01-01 04:00,abc,10,0.5", []string{"power_kw", `"abc"`}},
		{"UnparsableTemperature", 6, "2020-01-01 04:00,1,warm,0.5", []string{"temperature", `"warm"`}},
		{"EmptyPower", 6, "2020-01-01 04:00,,10,0.5", []string{"power_kw", `""`}},
		{"NaNPower", 7, "2020-01-01 05:00,NaN,10,0.5", []string{"power_kw", "NaN", "not a finite number"}},
		{"InfPower", 7, "2020-01-01 05:00,+Inf,10,0.5", []string{"power_kw", "+Inf"}},
		{"NegativePower", 8, "2020-01-01 06:00,-0.2,10,0.5", []string{"negative power -0.2"}},
		{"CloudPercent", 8, "2020-01-01 06:00,1,10,45", []string{"cloud", "45", "[0, 1]"}},
		{"BadTimestamp", 9, "01/01/2020 07:00,1,10,0.5", []string{"timestamp", `"01/01/2020 07:00"`}},
		{"Unsorted", 9, "2020-01-01 02:00,1,10,0.5", []string{"2020-01-01T02:00:00Z is before 2020-01-01T06:00:00Z at line 8", "chronological"}},
		{"Duplicate", 9, "2020-01-01 06:00,1,10,0.5", []string{"duplicate timestamp 2020-01-01T06:00:00Z (first at line 8)"}},
		{"SubHourly", 9, "2020-01-01 06:30,1,10,0.5", []string{"30m0s after 2020-01-01T06:00:00Z at line 8", "hourly"}},
		{"BareQuote", 4, `2020-01-01 02:00,1"5,10,0.5`, []string{`bare "`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows := csvRows(12)
			rows[tc.line-2] = tc.row
			path := testutil.WriteTemp(t, "pv.csv", csvHeader+strings.Join(rows, "\n")+"\n")
			s, err := solar.ReadCSV(path, solar.CSVOptions{})
			if s != nil {
				t.Error("got a series with an error")
			}
			wantParseError(t, err, path, tc.line, tc.fragments...)
		})
	}
}

func TestReadCSVBadFiles(t *testing.T) {
	tests := []struct {
		name, content string
		line          int
		fragments     []string
	}{
		{"Empty", "", 0, []string{"empty file"}},
		{"HeaderOnly", csvHeader, 1, []string{"no data rows"}},
		{"HeaderAfterBlankLines", "\n\n" + csvHeader + "\n", 3, []string{"no data rows"}},
		{"BlankLinesOnly", "\n\n\n", 0, []string{"empty file"}},
		{"NoPowerColumn", "timestamp,kw\n2020-01-01 00:00,1\n", 1, []string{`no power column "power_kw"`, "PowerColumn"}},
		{"NoTimeColumn", "time,power_kw\n2020-01-01 00:00,1\n", 1, []string{`no timestamp column "timestamp"`, "TimeColumn"}},
		{"TwoTemperatureColumns", "timestamp,power_kw,temp_air,T2m\n2020-01-01 00:00,1,2,3\n", 1, []string{`"temp_air" and "T2m"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := testutil.WriteTemp(t, "pv.csv", tc.content)
			_, err := solar.ReadCSV(path, solar.CSVOptions{})
			wantParseError(t, err, path, tc.line, tc.fragments...)
		})
	}
	t.Run("Missing", func(t *testing.T) {
		path := t.TempDir() + "/nope.csv"
		_, err := solar.ReadCSV(path, solar.CSVOptions{})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want fs.ErrNotExist naming %s", err, path)
		}
		var pe *solar.ParseError
		if errors.As(err, &pe) {
			t.Errorf("a missing file is not a *ParseError: %v", err)
		}
	})
}

func TestReadCSVGaps(t *testing.T) {
	// drop returns csvRows(12) without the rows at the given hours.
	drop := func(hours ...int) string {
		var kept []string
		for i, r := range csvRows(12) {
			skip := false
			for _, h := range hours {
				skip = skip || h == i
			}
			if !skip {
				kept = append(kept, r)
			}
		}
		return csvHeader + strings.Join(kept, "\n") + "\n"
	}

	t.Run("FilledByInterpolation", func(t *testing.T) {
		content := strings.Replace(drop(4, 5), "2020-01-01 06:00,1.5,10,0.5", "2020-01-01 06:00,3,16,0.8", 1)
		path := testutil.WriteTemp(t, "pv.csv", content)
		s := readCSV(t, path, solar.CSVOptions{})
		if s.Len() != 12 {
			t.Fatalf("%d hours, want 12", s.Len())
		}
		// Hours 3 (1.5 kW, 10 °C, 0.5) and 6 (3 kW, 16 °C, 0.8) bracket the gap.
		for h, want := range map[int][3]float64{4: {2, 12, 0.6}, 5: {2.5, 14, 0.7}} {
			got := [3]float64{s.Power[h], s.Temperature[h], s.Cloud[h]}
			for k := range got {
				if !near(got[k], want[k], 1e-12) {
					t.Errorf("hour %d: %v, want %v", h, got, want)
					break
				}
			}
		}
		want := []solar.Repair{{File: path, Line: 6, From: time.Date(2020, time.January, 1, 4, 0, 0, 0, time.UTC), Hours: 2}}
		if len(s.Repairs) != 1 || s.Repairs[0] != want[0] {
			t.Fatalf("repairs %+v, want %+v", s.Repairs, want)
		}
		wantStr := path + ":6: filled 2 missing hours 2020-01-01T04:00:00Z..2020-01-01T05:00:00Z by linear interpolation"
		if got := s.Repairs[0].String(); got != wantStr {
			t.Errorf("repair reads %q, want %q", got, wantStr)
		}
	})
	t.Run("SeveralGaps", func(t *testing.T) {
		path := testutil.WriteTemp(t, "pv.csv", drop(1, 4, 5, 6, 9))
		s := readCSV(t, path, solar.CSVOptions{})
		if s.Len() != 12 || len(s.Repairs) != 3 || s.Repairs[1].Hours != 3 || s.Repairs[2].Line != 7 {
			t.Fatalf("%d hours, repairs %v", s.Len(), s.Repairs)
		}
		wantStr := path + ":3: filled 1 missing hour 2020-01-01T01:00:00Z by linear interpolation"
		if got := s.Repairs[0].String(); got != wantStr {
			t.Errorf("repair reads %q, want %q", got, wantStr)
		}
	})
	t.Run("TooLong", func(t *testing.T) {
		path := testutil.WriteTemp(t, "pv.csv", drop(3, 4, 5, 6))
		_, err := solar.ReadCSV(path, solar.CSVOptions{})
		wantParseError(t, err, path, 5, "gap of 4 missing hours", "2020-01-01T02:00:00Z (line 4)", "2020-01-01T07:00:00Z", "at most 3 hours")
	})
	t.Run("LimitRaised", func(t *testing.T) {
		path := testutil.WriteTemp(t, "pv.csv", drop(3, 4, 5, 6))
		s := readCSV(t, path, solar.CSVOptions{MaxGapFillHours: 4})
		if s.Len() != 12 || len(s.Repairs) != 1 {
			t.Errorf("%d hours, repairs %v", s.Len(), s.Repairs)
		}
	})
	t.Run("FillingDisabled", func(t *testing.T) {
		path := testutil.WriteTemp(t, "pv.csv", drop(7))
		_, err := solar.ReadCSV(path, solar.CSVOptions{MaxGapFillHours: -1})
		wantParseError(t, err, path, 9, "gap of 1 missing hour ", "at most 0 hours")
	})
}
