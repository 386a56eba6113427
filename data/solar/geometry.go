package solar

import (
	"math"
	"time"
)

// SunPosition is the geometric position of the sun seen from a site at one
// instant, computed with Spencer's (1971) Fourier series for declination and
// equation of time: within about 0.4° and 1 minute of the true values in the
// 2020s (the series was fitted around 1950), ample for hourly PV modelling.
// Refraction is ignored, so ElevationDeg is slightly low near the horizon.
type SunPosition struct {
	DeclinationDeg    float64 // solar declination, degrees, in [-23.5, 23.5]
	EquationOfTimeMin float64 // apparent minus mean solar time, minutes, in about [-14.5, 16.5]
	HourAngleDeg      float64 // degrees in [-180, 180): 0 at solar noon, negative in the morning
	ElevationDeg      float64 // angle above the horizon, degrees in [-90, 90]
}

// SunAt returns the sun's position at time t (any zone; converted to UTC) for
// a site at latDeg (north positive) and lonDeg (east positive).
func SunAt(t time.Time, latDeg, lonDeg float64) SunPosition {
	u := t.UTC()
	hour := float64(u.Hour()) + float64(u.Minute())/60 +
		(float64(u.Second())+float64(u.Nanosecond())/1e9)/3600
	// Fractional year in radians (NOAA's form of Spencer's series).
	g := 2 * math.Pi / float64(daysInYear(u.Year())) * (float64(u.YearDay()-1) + (hour-12)/24)
	dec := 0.006918 - 0.399912*math.Cos(g) + 0.070257*math.Sin(g) -
		0.006758*math.Cos(2*g) + 0.000907*math.Sin(2*g) -
		0.002697*math.Cos(3*g) + 0.00148*math.Sin(3*g)
	eot := 229.18 * (0.000075 + 0.001868*math.Cos(g) - 0.032077*math.Sin(g) -
		0.014615*math.Cos(2*g) - 0.040849*math.Sin(2*g))
	trueSolarMin := hour*60 + eot + 4*lonDeg
	ha := math.Mod(trueSolarMin/4-180, 360)
	if ha < -180 {
		ha += 360
	} else if ha >= 180 {
		ha -= 360
	}
	lat := latDeg * deg
	sinEl := math.Sin(lat)*math.Sin(dec) + math.Cos(lat)*math.Cos(dec)*math.Cos(ha*deg)
	return SunPosition{
		DeclinationDeg:    dec / deg,
		EquationOfTimeMin: eot,
		HourAngleDeg:      ha,
		ElevationDeg:      math.Asin(math.Max(-1, math.Min(1, sinEl))) / deg,
	}
}

// ClearSkyIrradiance is cloudless-sky irradiance in W/m², all >= 0 and all
// exactly 0 while the sun is at or below the horizon.
type ClearSkyIrradiance struct {
	GHI float64 // global horizontal irradiance
	DNI float64 // direct normal irradiance
	POA float64 // global irradiance on the plane of array (see ClearSky)
}

// Constants of the clear-sky model.
const (
	deg = math.Pi / 180
	// meinelI0 is the extraterrestrial constant of Meinel's air-mass model
	// (W/m²), as used by PVEducation.
	meinelI0 = 1353.0
	// diffuseFrac is the diffuse horizontal irradiance as a fraction of DNI
	// on a clear day (PVEducation's rule of thumb).
	diffuseFrac = 0.1
	// albedo of the ground, for the reflected part on a tilted plane.
	albedo = 0.2
)

// ClearSky returns clear-sky irradiance at time t for a site at latDeg,
// lonDeg. The model is deliberately simple: Kasten-Young air mass, Meinel's
// DNI = 1353 * 0.7^(AM^0.678), diffuse horizontal = 10% of DNI. The plane of
// array is fixed, tilted by |latitude| toward the equator (horizontal at the
// equator), a common rooftop choice; its normal lies in the celestial
// equator, so the beam's incidence cosine is cos(declination)*cos(hour angle).
// POA adds isotropic sky diffuse and ground reflection (albedo 0.2).
func ClearSky(t time.Time, latDeg, lonDeg float64) ClearSkyIrradiance {
	sp := SunAt(t, latDeg, lonDeg)
	if sp.ElevationDeg <= 0 {
		return ClearSkyIrradiance{}
	}
	zenith := 90 - sp.ElevationDeg
	cosZ := math.Sin(sp.ElevationDeg * deg)
	airMass := 1 / (cosZ + 0.50572*math.Pow(96.07995-zenith, -1.6364))
	dni := meinelI0 * math.Pow(0.7, math.Pow(airMass, 0.678))
	dhi := diffuseFrac * dni
	ghi := dni*cosZ + dhi
	cosTilt := math.Cos(math.Abs(latDeg) * deg)
	cosInc := math.Cos(sp.DeclinationDeg*deg) * math.Cos(sp.HourAngleDeg*deg)
	poa := dni*math.Max(0, cosInc) + dhi*(1+cosTilt)/2 + ghi*albedo*(1-cosTilt)/2
	return ClearSkyIrradiance{GHI: ghi, DNI: dni, POA: poa}
}

func daysInYear(year int) int {
	return time.Date(year, time.December, 31, 0, 0, 0, 0, time.UTC).YearDay()
}
