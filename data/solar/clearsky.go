package solar

import (
	"math"
	"time"
)

// Plane is the orientation of a plant's modules: TiltDeg from horizontal, in [0, 90], and
// AzimuthDeg the direction it faces in PVGIS' convention (0 south, 90 west, -90 east, 180 north).
type Plane struct {
	TiltDeg    float64 `json:"tilt_deg"`
	AzimuthDeg float64 `json:"azimuth_deg"`
}

// DefaultPlane is the plane a site's plant is assumed to have when its source does not say: tilted
// by |latitude| toward the equator, the plane of ClearSky.
func DefaultPlane(site Site) Plane {
	p := Plane{TiltDeg: math.Abs(site.Latitude)}
	if site.Latitude < 0 {
		p.AzimuthDeg = 180
	}
	return p
}

// DaylightZenithDeg is the largest sun zenith angle at which an hour counts as daylight: the
// Solar Forecast Arbiter's threshold, below which (sun under 3° of elevation) clear-sky models and
// measurements are both unreliable.
const DaylightZenithDeg = 87.0

// Plant is what the clear-sky power of a site needs: where it is, how it faces, its nameplate, and
// where in each hour its values are taken.
type Plant struct {
	Site         Site          `json:"site"`
	Plane        Plane         `json:"plane"`
	CapacityKW   float64       `json:"capacity_kw"`
	SampleOffset time.Duration `json:"sample_offset_ns"`
}

// ClearSkyModel names the clear-sky power model of ClearSkyKW, so that a stored model can tell
// whether it was trained with this one.
const ClearSkyModel = "meinel-isotropic-losses14"

// ClearSkyKW returns the plant's power under a cloudless sky for the hour starting at hour: the
// irradiance of ClearSky's model on the plant's plane at hour+SampleOffset, times CapacityKW/1000
// and 1-0.14 system losses, at 25 °C cells. It is exactly 0 while the sun is at or below the
// horizon and never negative.
func (p Plant) ClearSkyKW(hour time.Time) float64 {
	return p.CapacityKW * p.clearSkyPOA(hour.Add(p.SampleOffset)) / 1000 * (1 - systemLosses)
}

// Elevation returns the sun's elevation in degrees at the plant for the hour starting at hour, at
// hour+SampleOffset.
func (p Plant) Elevation(hour time.Time) float64 {
	return SunAt(hour.Add(p.SampleOffset), p.Site.Latitude, p.Site.Longitude).ElevationDeg
}

// clearSkyPOA is ClearSky's plane-of-array irradiance on the plant's own plane.
func (p Plant) clearSkyPOA(t time.Time) float64 {
	sp := SunAt(t, p.Site.Latitude, p.Site.Longitude)
	if sp.ElevationDeg <= 0 {
		return 0
	}
	cs := ClearSky(t, p.Site.Latitude, p.Site.Longitude)
	dhi := cs.GHI - cs.DNI*math.Sin(sp.ElevationDeg*deg)
	cosTilt := math.Cos(p.Plane.TiltDeg * deg)
	return cs.DNI*math.Max(0, p.incidenceCos(sp)) + dhi*(1+cosTilt)/2 + cs.GHI*albedo*(1-cosTilt)/2
}

// incidenceCos is the cosine of the angle between the sun and the plane's normal.
func (p Plant) incidenceCos(sp SunPosition) float64 {
	lat, dec, ha := p.Site.Latitude*deg, sp.DeclinationDeg*deg, sp.HourAngleDeg*deg
	// The sun's direction in local up/east/north coordinates (hour angle positive after noon).
	up := math.Sin(lat)*math.Sin(dec) + math.Cos(lat)*math.Cos(dec)*math.Cos(ha)
	east := -math.Cos(dec) * math.Sin(ha)
	north := math.Cos(lat)*math.Sin(dec) - math.Sin(lat)*math.Cos(dec)*math.Cos(ha)
	// The plane's normal: tilted toward its azimuth (0 south, 90 west).
	tilt, az := p.Plane.TiltDeg*deg, p.Plane.AzimuthDeg*deg
	return up*math.Cos(tilt) - north*math.Sin(tilt)*math.Cos(az) - east*math.Sin(tilt)*math.Sin(az)
}
