package solar_test

import (
	"math"
	"testing"
	"time"

	"spottrain/data/solar"
)

func utc(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

// Reference: the 2023 solstices and equinoxes (instants from the
// Astronomical Almanac), where the declination is ±23.44° or 0. Spencer's
// series was fitted around 1950, so in the 2020s it is off by up to about
// 0.35° (the equinox has drifted most of a day in the calendar).
func TestSunAtDeclination(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want float64 // degrees
	}{
		{"JuneSolstice", utc(2023, time.June, 21, 14, 58), 23.44},
		{"DecemberSolstice", utc(2023, time.December, 22, 3, 27), -23.44},
		{"MarchEquinox", utc(2023, time.March, 20, 21, 24), 0},
		{"SeptemberEquinox", utc(2023, time.September, 23, 6, 50), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := solar.SunAt(tc.t, 48.1, 11.6).DeclinationDeg
			if !near(got, tc.want, 0.4) {
				t.Errorf("declination %.3f°, want %.2f° ± 0.4°", got, tc.want)
			}
		})
	}
}

func TestSunAtEquationOfTime(t *testing.T) {
	tests := []struct {
		name string
		t    time.Time
		want float64 // minutes
	}{
		{"FebruaryMinimum", utc(2023, time.February, 11, 12, 0), -14.2},
		{"NovemberMaximum", utc(2023, time.November, 3, 12, 0), 16.4},
		{"NearZeroApril", utc(2023, time.April, 15, 12, 0), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := solar.SunAt(tc.t, 0, 0).EquationOfTimeMin
			if !near(got, tc.want, 1) {
				t.Errorf("equation of time %.2f min, want %.1f ± 1", got, tc.want)
			}
		})
	}
}

// maxElevation scans a UTC day minute by minute and returns the highest
// elevation and the hour angle at that minute.
func maxElevation(day time.Time, lat, lon float64) (elev, hourAngle float64) {
	elev = math.Inf(-1)
	for m := range 24 * 60 {
		sp := solar.SunAt(day.Add(time.Duration(m)*time.Minute), lat, lon)
		if sp.ElevationDeg > elev {
			elev, hourAngle = sp.ElevationDeg, sp.HourAngleDeg
		}
	}
	return elev, hourAngle
}

func TestSunAtNoonElevation(t *testing.T) {
	tests := []struct {
		name     string
		day      time.Time
		lat, lon float64
		want     float64 // 90 - |lat - declination|
		tol      float64
	}{
		{"MunichEquinox", utc(2023, time.March, 20, 0, 0), 48.1, 11.6, 41.9, 1},
		{"MunichJune", utc(2023, time.June, 21, 0, 0), 48.1, 11.6, 65.34, 0.3},
		{"MunichDecember", utc(2023, time.December, 21, 0, 0), 48.1, 11.6, 18.46, 0.3},
		{"SydneyDecember", utc(2023, time.December, 21, 0, 0), -33.87, 151.21, 79.57, 0.3},
		{"QuitoEquinox", utc(2023, time.September, 23, 0, 0), -0.18, -78.47, 89.8, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			elev, ha := maxElevation(tc.day, tc.lat, tc.lon)
			if !near(elev, tc.want, tc.tol) {
				t.Errorf("solar noon elevation %.2f°, want %.2f° ± %v", elev, tc.want, tc.tol)
			}
			if !near(ha, 0, 0.5) {
				t.Errorf("hour angle at the highest sun %.2f°, want 0 ± 0.5 (2 min)", ha)
			}
		})
	}
}

func TestSunAtHourAngle(t *testing.T) {
	for h := range 24 {
		sp := solar.SunAt(utc(2023, time.May, 5, h, 0), 48.1, 11.6)
		if sp.HourAngleDeg < -180 || sp.HourAngleDeg >= 180 {
			t.Fatalf("hour %d: hour angle %v outside [-180, 180)", h, sp.HourAngleDeg)
		}
	}
	// Munich is 46 minutes ahead of UTC in mean solar time: the sun is
	// below the horizon at midnight UTC and west of the meridian at 12 UTC.
	if sp := solar.SunAt(utc(2023, time.May, 5, 0, 0), 48.1, 11.6); sp.ElevationDeg >= 0 {
		t.Errorf("midnight elevation %.1f°, want < 0", sp.ElevationDeg)
	}
	if sp := solar.SunAt(utc(2023, time.May, 5, 12, 0), 48.1, 11.6); !(sp.HourAngleDeg > 5 && sp.HourAngleDeg < 20) {
		t.Errorf("hour angle at 12 UTC %.1f°, want about +15° (afternoon)", sp.HourAngleDeg)
	}
	// A zoned time is the same instant as its UTC equivalent.
	berlin := time.FixedZone("CEST", 2*3600)
	a := solar.SunAt(time.Date(2023, time.May, 5, 14, 0, 0, 0, berlin), 48.1, 11.6)
	b := solar.SunAt(utc(2023, time.May, 5, 12, 0), 48.1, 11.6)
	if a != b {
		t.Errorf("SunAt depends on the zone: %+v vs %+v", a, b)
	}
}

func TestClearSky(t *testing.T) {
	t.Run("NightIsZero", func(t *testing.T) {
		got := solar.ClearSky(utc(2023, time.June, 21, 23, 0), 48.1, 11.6)
		if got != (solar.ClearSkyIrradiance{}) {
			t.Errorf("night irradiance %+v, want all zero", got)
		}
	})
	t.Run("SummerNoon", func(t *testing.T) {
		got := solar.ClearSky(utc(2023, time.June, 21, 11, 15), 48.1, 11.6)
		if got.GHI < 800 || got.GHI > 1100 {
			t.Errorf("GHI %.0f W/m², want 800..1100 at a 65° sun", got.GHI)
		}
		if got.DNI < 800 || got.DNI > 1000 {
			t.Errorf("DNI %.0f W/m², want 800..1000", got.DNI)
		}
	})
	t.Run("TiltHelpsInWinter", func(t *testing.T) {
		got := solar.ClearSky(utc(2023, time.December, 21, 11, 15), 48.1, 11.6)
		if got.POA < 1.5*got.GHI {
			t.Errorf("winter noon POA %.0f W/m² vs GHI %.0f: a plane tilted 48° toward the sun should get > 1.5x", got.POA, got.GHI)
		}
	})
	t.Run("EquatorIsHorizontal", func(t *testing.T) {
		got := solar.ClearSky(utc(2023, time.March, 1, 9, 0), 0, 30)
		if !near(got.POA, got.GHI, 1e-9) {
			t.Errorf("POA %.3f != GHI %.3f at the equator (tilt 0)", got.POA, got.GHI)
		}
	})
	t.Run("BoundsOverAYear", func(t *testing.T) {
		for _, lat := range []float64{-60, -33.9, 0, 48.1, 70} {
			for h := 0; h < 365*24; h += 7 {
				ts := utc(2023, time.January, 1, 0, 0).Add(time.Duration(h) * time.Hour)
				c := solar.ClearSky(ts, lat, 10)
				up := solar.SunAt(ts, lat, 10).ElevationDeg > 0
				if c.GHI < 0 || c.POA < 0 || c.DNI < 0 || c.DNI > 1353 || c.POA > 1400 {
					t.Fatalf("lat %v at %v: out of bounds %+v", lat, ts, c)
				}
				if up != (c.GHI > 0) {
					t.Fatalf("lat %v at %v: sun up %v but GHI %v", lat, ts, up, c.GHI)
				}
			}
		}
	})
}

func TestPlantClearSkyMatchesClearSkyOnTheDefaultPlane(t *testing.T) {
	for _, site := range []solar.Site{{Latitude: 48.1, Longitude: 11.6}, {Latitude: -33.9, Longitude: 151.2}, {Latitude: 0, Longitude: -60}} {
		p := solar.Plant{Site: site, Plane: solar.DefaultPlane(site), CapacityKW: 1}
		for h := 0; h < 24*365; h += 7 {
			tm := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(h) * time.Hour)
			want := solar.ClearSky(tm, site.Latitude, site.Longitude).POA / 1000 * 0.86
			if got := p.ClearSkyKW(tm); math.Abs(got-want) > 1e-9 {
				t.Fatalf("%v at %s: ClearSkyKW %v, ClearSky's POA gives %v", site, tm, got, want)
			}
		}
	}
}

func TestPlantClearSkyFollowsThePlane(t *testing.T) {
	site := solar.Site{Latitude: 40, Longitude: 0}
	morning := time.Date(2024, 6, 21, 8, 0, 0, 0, time.UTC)
	afternoon := time.Date(2024, 6, 21, 16, 0, 0, 0, time.UTC)
	east := solar.Plant{Site: site, Plane: solar.Plane{TiltDeg: 60, AzimuthDeg: -90}, CapacityKW: 1}
	west := solar.Plant{Site: site, Plane: solar.Plane{TiltDeg: 60, AzimuthDeg: 90}, CapacityKW: 1}
	if !(east.ClearSkyKW(morning) > 1.5*west.ClearSkyKW(morning)) || !(west.ClearSkyKW(afternoon) > 1.5*east.ClearSkyKW(afternoon)) {
		t.Fatalf("east plane %v/%v kW, west plane %v/%v kW (morning/afternoon): the planes should each win their half of the day",
			east.ClearSkyKW(morning), east.ClearSkyKW(afternoon), west.ClearSkyKW(morning), west.ClearSkyKW(afternoon))
	}
	flat := solar.Plant{Site: site, CapacityKW: 1}
	noon := time.Date(2024, 6, 21, 12, 0, 0, 0, time.UTC)
	if got, want := flat.ClearSkyKW(noon), solar.ClearSky(noon, 40, 0).GHI/1000*0.86; math.Abs(got-want) > 1e-9 {
		t.Fatalf("a flat plane gets %v kW, want GHI's %v", got, want)
	}
	night := time.Date(2024, 6, 21, 23, 0, 0, 0, time.UTC)
	if got := east.ClearSkyKW(night); got != 0 {
		t.Fatalf("clear-sky power at night = %v, want exactly 0", got)
	}
}
