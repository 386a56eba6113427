package solar_test

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"spottrain/data/solar"
	"spottrain/internal/testutil"
)

const pvgisFixture = "testdata/pvgis_hourly.csv"

// Layout of the fixture: metadata on lines 1-10, header on line 11, data
// (72 hours from 2020-06-01T00:10) on lines 12-83, a blank line 84, and the
// footer on lines 85-92. Lines end in CRLF, as PVGIS writes them.
const (
	pvgisHeaderLine = 11
	pvgisFirstData  = 12
	pvgisBlankLine  = 84
)

// pvgisLines returns the fixture's lines, without line ends.
func pvgisLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(pvgisFixture)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\r\n"), "\r\n")
}

// pvgisWith writes the fixture after edit to a temporary file.
func pvgisWith(t *testing.T, edit func([]string) []string) string {
	t.Helper()
	return testutil.WriteTemp(t, "Timeseries_45.000_8.000_SA2_1kWp_crystSi_14_35deg_0deg_2020_2020.csv",
		strings.Join(edit(pvgisLines(t)), "\r\n")+"\r\n")
}

// setLine returns an edit replacing 1-based line n.
func setLine(n int, text string) func([]string) []string {
	return func(l []string) []string { l[n-1] = text; return l }
}

// deleteLines returns an edit removing 1-based lines from..to.
func deleteLines(from, to int) func([]string) []string {
	return func(l []string) []string { return append(l[:from-1:from-1], l[to:]...) }
}

func readPVGIS(t *testing.T, path string) *solar.Series {
	t.Helper()
	s, err := solar.ReadPVGIS(path)
	if err != nil {
		t.Fatalf("ReadPVGIS: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("ReadPVGIS returned an invalid series: %v", err)
	}
	return s
}

func TestReadPVGISFixture(t *testing.T) {
	s := readPVGIS(t, pvgisFixture)
	if s.Len() != 72 || s.Source != pvgisFixture {
		t.Fatalf("%d hours from %q, want 72 from %q", s.Len(), s.Source, pvgisFixture)
	}
	first, last := time.Date(2020, time.June, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, time.June, 3, 23, 0, 0, 0, time.UTC)
	if !s.Time[0].Equal(first) || !s.Time[71].Equal(last) || s.Time[0].Location() != time.UTC {
		t.Errorf("hours %v..%v, want %v..%v (the :10 offset mapped to the hour)", s.Time[0], s.Time[71], first, last)
	}
	// Line 23: 20200601:1110,796.49,1053.57,66.71,21.90,1.18,0.0
	if !near(s.Power[11], 0.79649, 1e-12) || s.Irradiance[11] != 1053.57 || s.Temperature[11] != 21.90 {
		t.Errorf("11:00: power %v kW irradiance %v temperature %v, want 0.79649, 1053.57, 21.90", s.Power[11], s.Irradiance[11], s.Temperature[11])
	}
	if s.CapacityKW != 1 || s.IrradianceClearSky || s.Cloud != nil || s.Repairs != nil {
		t.Errorf("capacity %v clear-sky %v cloud %v repairs %v; want 1 kWp from the metadata, measured G(i), no cloud, no repairs",
			s.CapacityKW, s.IrradianceClearSky, s.Cloud, s.Repairs)
	}
	// What the clear-sky model needs: the site, the plane (Slope 35, Azimuth 0), the :10 of the
	// samples and PVGIS' own sun height.
	if *s.Site != (solar.Site{Latitude: 45, Longitude: 8}) || *s.Plane != (solar.Plane{TiltDeg: 35, AzimuthDeg: 0}) ||
		s.SampleOffset != 10*time.Minute || s.SunHeight[11] != 66.71 || s.SunHeight[0] != 0 || s.Estimated != nil {
		t.Errorf("site %v plane %v offset %v sun height at 11h %v, at 0h %v, estimated %v", s.Site, s.Plane, s.SampleOffset, s.SunHeight[11], s.SunHeight[0], s.Estimated)
	}
	// Our sun agrees with PVGIS' at the :10 instant to within half a degree by day.
	plant := solar.Plant{Site: *s.Site, Plane: *s.Plane, CapacityKW: 1, SampleOffset: s.SampleOffset}
	for i, h := range s.SunHeight {
		if h > 5 && math.Abs(plant.Elevation(s.Time[i])-h) > 0.5 {
			t.Errorf("%s: sun elevation %v, PVGIS says %v", s.Time[i], plant.Elevation(s.Time[i]), h)
		}
	}
}

// Rows with Int = 1 (reconstructed radiation) and filled gaps are estimated, not measured.
func TestReadPVGISEstimated(t *testing.T) {
	path := pvgisWith(t, func(l []string) []string {
		l[pvgisFirstData+11] = strings.TrimSuffix(l[pvgisFirstData+11], "0.0") + "1.0"   // 12:10
		return append(l[:pvgisFirstData+30:pvgisFirstData+30], l[pvgisFirstData+31:]...) // 07:10 on June 2 missing
	})
	s := readPVGIS(t, path)
	for i := range s.Len() {
		if want := i == 12 || i == 31; s.IsEstimated(i) != want {
			t.Errorf("hour %d (%s) estimated %v, want %v", i, s.Time[i], s.IsEstimated(i), want)
		}
	}
}

func TestReadPVGISVariants(t *testing.T) {
	t.Run("Components", func(t *testing.T) {
		// An export with components=1 splits G(i) into beam, diffuse and
		// reflected parts.
		path := pvgisWith(t, func(l []string) []string {
			l[pvgisHeaderLine-1] = "time,P,Gb(i),Gd(i),Gr(i),H_sun,T2m,WS10m,Int"
			for i := pvgisFirstData - 1; i < pvgisBlankLine-1; i++ {
				f := strings.Split(l[i], ",")
				l[i] = strings.Join(append([]string{f[0], f[1], f[2], "10", "0.5"}, f[3:]...), ",")
			}
			return l
		})
		s := readPVGIS(t, path)
		if s.Len() != 72 || s.Irradiance[11] != 1053.57+10.5 || s.IrradianceClearSky || s.Temperature[11] != 21.90 {
			t.Errorf("%d hours, irradiance %v (clear-sky %v), temperature %v", s.Len(), s.Irradiance[11], s.IrradianceClearSky, s.Temperature[11])
		}
	})
	t.Run("NoIrradianceUsesClearSkyAtSite", func(t *testing.T) {
		path := pvgisWith(t, func(l []string) []string {
			for i := pvgisHeaderLine - 1; i < pvgisBlankLine-1; i++ {
				f := strings.Split(l[i], ",")
				l[i] = strings.Join(append(f[:2:2], f[3:]...), ",")
			}
			return l
		})
		s := readPVGIS(t, path)
		if !s.IrradianceClearSky || s.Irradiance[11] != solar.ClearSky(s.Time[11], 45, 8).POA || s.Irradiance[0] != 0 {
			t.Errorf("clear-sky %v, irradiance at 0h %v and 11h %v", s.IrradianceClearSky, s.Irradiance[0], s.Irradiance[11])
		}
	})
	t.Run("NoNominalPower", func(t *testing.T) {
		s := readPVGIS(t, pvgisWith(t, deleteLines(9, 9)))
		if s.CapacityKW != 0.79649 {
			t.Errorf("capacity %v, want the maximum observed power 0.79649", s.CapacityKW)
		}
	})
	t.Run("NoFooterLFEndings", func(t *testing.T) {
		lines := pvgisLines(t)[:pvgisBlankLine-1]
		path := testutil.WriteTemp(t, "pvgis.csv", strings.Join(lines, "\n"))
		if s := readPVGIS(t, path); s.Len() != 72 {
			t.Errorf("%d hours, want 72", s.Len())
		}
	})
	t.Run("GapFilled", func(t *testing.T) {
		path := pvgisWith(t, deleteLines(pvgisFirstData+10, pvgisFirstData+11)) // 10:10 and 11:10
		s := readPVGIS(t, path)
		want := solar.Repair{File: path, Line: pvgisFirstData + 10, From: time.Date(2020, time.June, 1, 10, 0, 0, 0, time.UTC), Hours: 2}
		if s.Len() != 72 || len(s.Repairs) != 1 || s.Repairs[0] != want {
			t.Fatalf("%d hours, repairs %+v, want 72 and %+v", s.Len(), s.Repairs, want)
		}
		// 09:10 is 634.80 W, 12:10 is 779.28 W.
		if !near(s.Power[10], 0.63480+(0.77928-0.63480)/3, 1e-9) {
			t.Errorf("filled 10:00 power %v", s.Power[10])
		}
	})
}

func TestReadPVGISBadRows(t *testing.T) {
	const row = pvgisFirstData + 5 // 20200601:0510 in the fixture
	tests := []struct {
		name      string
		edit      func([]string) []string
		line      int
		fragments []string
	}{
		{"TooFewFields", setLine(row, "20200601:0510,15.75,19.21,12.32,13.44,1.73"), row, []string{"6 fields, want 7"}},
		{"UnparsablePower", setLine(row, "20200601:0510,x,19.21,12.32,13.44,1.73,0.0"), row, []string{"column P", `"x"`}},
		{"UnparsableIrradiance", setLine(row, "20200601:0510,15.75,--,12.32,13.44,1.73,0.0"), row, []string{"column G(i)", `"--"`}},
		{"UnparsableTemperature", setLine(row, "20200601:0510,15.75,19.21,12.32,hot,1.73,0.0"), row, []string{"column T2m", `"hot"`}},
		{"BadTime", setLine(row, "2020-06-01 05:10,15.75,19.21,12.32,13.44,1.73,0.0"), row, []string{"column time", "YYYYMMDD:HHMM"}},
		{"NaNPower", setLine(row, "20200601:0510,nan,19.21,12.32,13.44,1.73,0.0"), row, []string{"column P", "NaN"}},
		{"NegativePower", setLine(row, "20200601:0510,-3.5,19.21,12.32,13.44,1.73,0.0"), row, []string{"column P", "negative power -0.0035"}},
		{"Duplicate", setLine(row, "20200601:0410,15.75,19.21,12.32,13.44,1.73,0.0"), row, []string{"duplicate timestamp 2020-06-01T04:00:00Z (first at line 16)"}},
		{"DuplicateMinuteOffset", setLine(row, "20200601:0411,15.75,19.21,12.32,13.44,1.73,0.0"), row, []string{"duplicate timestamp 2020-06-01T04:00:00Z"}},
		{"Unsorted", setLine(row, "20200601:0110,15.75,19.21,12.32,13.44,1.73,0.0"), row, []string{"is before 2020-06-01T04:00:00Z at line 16"}},
		{"GapTooLong", deleteLines(row, row+3), row, []string{"gap of 4 missing hours", "at most 3 hours"}},
		{"DataAfterFooter", func(l []string) []string { return append(l, "20200604:0010,0.00,0.00,0.00,15.06,2.46,0.0") }, 93, []string{"data row after the blank line at line 84"}},
		{"PVCalculationOff", setLine(pvgisHeaderLine, "time,Gx,G(i),H_sun,T2m,WS10m,Int"), pvgisHeaderLine, []string{"no column P", "pvcalculation=1"}},
		{"BadLatitude", setLine(1, "Latitude (decimal degrees):\tnorth"), 1, []string{"latitude", `"north"`, "[-90, 90]"}},
		{"LatitudeOutOfRange", setLine(1, "Latitude (decimal degrees):\t145.0"), 1, []string{"latitude", `"145.0"`}},
		{"NegativeNominalPower", setLine(9, "Nominal power of the PV system (c-Si) (kWp):\t-1"), 9, []string{"(kwp)", `"-1"`}},
		{"HeaderOnly", func(l []string) []string { return l[:pvgisHeaderLine] }, pvgisHeaderLine, []string{"no data rows"}},
		{"HeaderThenFooter", deleteLines(pvgisFirstData, pvgisBlankLine-1), pvgisHeaderLine, []string{"no data rows"}},
		{"NoHeader", deleteLines(pvgisHeaderLine, pvgisHeaderLine), 0, []string{`no header line starting with "time,"`}},
		{"Empty", func([]string) []string { return nil }, 0, []string{"empty file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := pvgisWith(t, tc.edit)
			if tc.name == "Empty" {
				path = testutil.WriteTemp(t, "empty.csv", "")
			}
			s, err := solar.ReadPVGIS(path)
			if s != nil {
				t.Error("got a series with an error")
			}
			wantParseError(t, err, path, tc.line, tc.fragments...)
		})
	}
	t.Run("Missing", func(t *testing.T) {
		path := t.TempDir() + "/nope.csv"
		_, err := solar.ReadPVGIS(path)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want fs.ErrNotExist naming %s", err, path)
		}
	})
}

func TestOpen(t *testing.T) {
	t.Run("PVGIS", func(t *testing.T) {
		s, err := solar.Open(pvgisFixture, solar.CSVOptions{})
		if err != nil || s.Len() != 72 || s.CapacityKW != 1 {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("PVGISWithoutMetadata", func(t *testing.T) {
		path := pvgisWith(t, deleteLines(1, pvgisHeaderLine-1))
		s, err := solar.Open(path, solar.CSVOptions{})
		if err != nil || s.Len() != 72 || s.Irradiance[11] != 1053.57 {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("PVGISOptions", func(t *testing.T) {
		path := pvgisWith(t, deleteLines(pvgisFirstData+8, pvgisFirstData+11))
		if _, err := solar.Open(path, solar.CSVOptions{}); err == nil {
			t.Fatal("a 4-hour gap was accepted with the default limit")
		}
		s, err := solar.Open(path, solar.CSVOptions{MaxGapFillHours: 4, CapacityKW: 0.9})
		if err != nil || s.Len() != 72 || s.CapacityKW != 0.9 || len(s.Repairs) != 1 {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("GenericCSV", func(t *testing.T) {
		s, err := solar.Open("testdata/pv_hourly.csv", solar.CSVOptions{})
		if err != nil || s.Len() != 48 || s.Cloud == nil {
			t.Fatalf("Open: %v", err)
		}
	})
	t.Run("GenericCSVError", func(t *testing.T) {
		path := testutil.WriteTemp(t, "pv.csv", "timestamp,power_kw\n2020-01-01 00:00,-1\n")
		_, err := solar.Open(path, solar.CSVOptions{})
		wantParseError(t, err, path, 2, "negative power")
	})
	t.Run("Missing", func(t *testing.T) {
		path := t.TempDir() + "/nope.csv"
		_, err := solar.Open(path, solar.CSVOptions{})
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("error %v, want fs.ErrNotExist naming %s", err, path)
		}
	})
	t.Run("BadOptions", func(t *testing.T) {
		_, err := solar.Open(pvgisFixture, solar.CSVOptions{CapacityKW: -2})
		wantConfigError(t, err, "CSVOptions.CapacityKW")
	})
}
