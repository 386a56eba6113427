package solar

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// SynthConfig describes a synthetic PV plant and its weather. The zero value
// is not valid; start from DefaultSynthConfig.
type SynthConfig struct {
	Latitude, Longitude float64   // site, degrees: latitude in [-90, 90] (north positive), longitude in [-180, 180] (east positive)
	Start               time.Time // first hour; converted to UTC, must be on the hour
	Days                int       // length in days (24 hourly samples each), 1..36600
	CapacityKW          float64   // nameplate power (DC nameplate ~ AC maximum), kW, > 0; power never exceeds it
	CloudPersistence    float64   // hour-to-hour autocorrelation of cloudiness (logit AR(1) coefficient), in [0, 1)
	Noise               float64   // relative standard deviation of multiplicative power noise, in [0, 1]
	Seed                uint64    // seeds every random stream; equal configs give identical series
}

// DefaultSynthConfig returns a 5 kW plant near Munich (48.1°N, 11.6°E) over
// two years from 2023-01-01 UTC, cloud persistence 0.9, 2% noise, seed 1.
func DefaultSynthConfig() SynthConfig {
	return SynthConfig{
		Latitude:         48.1,
		Longitude:        11.6,
		Start:            time.Date(2023, time.January, 1, 0, 0, 0, 0, time.UTC),
		Days:             730,
		CapacityKW:       5,
		CloudPersistence: 0.9,
		Noise:            0.02,
		Seed:             1,
	}
}

// maxSynthDays bounds SynthConfig.Days (100 years) so a typo cannot allocate
// unbounded memory.
const maxSynthDays = 36600

// Validate returns a *ConfigError naming the first invalid field, or nil.
func (c SynthConfig) Validate() error {
	bad := func(field, format string, args ...any) error {
		return &ConfigError{Field: "SynthConfig." + field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !(c.Latitude >= -90 && c.Latitude <= 90):
		return bad("Latitude", "must be in [-90, 90] degrees, got %v", c.Latitude)
	case !(c.Longitude >= -180 && c.Longitude <= 180):
		return bad("Longitude", "must be in [-180, 180] degrees, got %v", c.Longitude)
	case c.Start.IsZero():
		return bad("Start", "must be set")
	case !c.Start.Equal(c.Start.Truncate(time.Hour)):
		return bad("Start", "must be on the hour, got %s", c.Start.UTC().Format(time.RFC3339Nano))
	case c.Days < 1 || c.Days > maxSynthDays:
		return bad("Days", "must be in [1, %d], got %d", maxSynthDays, c.Days)
	case !(c.CapacityKW > 0) || math.IsInf(c.CapacityKW, 1):
		return bad("CapacityKW", "must be a finite number > 0, got %v", c.CapacityKW)
	case !(c.CloudPersistence >= 0 && c.CloudPersistence < 1):
		return bad("CloudPersistence", "must be in [0, 1), got %v", c.CloudPersistence)
	case !(c.Noise >= 0 && c.Noise <= 1):
		return bad("Noise", "must be in [0, 1], got %v", c.Noise)
	}
	return nil
}

// Model constants of the generator.
const (
	// systemLosses is the fraction lost to wiring, soiling, mismatch and the
	// inverter (PVGIS' default of 14%).
	systemLosses = 0.14
	// tempCoeff is the relative power change per °C of cell temperature
	// above (a loss) or below (a gain) 25 °C, typical of crystalline silicon.
	tempCoeff = -0.004
	// cellHeating is the cell temperature rise above ambient per W/m² of
	// plane-of-array irradiance: NOCT 45 °C gives (45-20)/800.
	cellHeating = 25.0 / 800
	// regimeStay is the probability that a day keeps yesterday's weather
	// regime; otherwise the regime is drawn from the seasonal distribution.
	regimeStay = 0.6
)

// Independent random streams (second PCG word), so that changing how one
// component draws never shifts the others.
const (
	streamRegime uint64 = 0x9e3779b97f4a7c15 + iota
	streamCloud
	streamTemp
	streamNoise
)

// weather regimes of a day: the hourly cloud process reverts to its mean.
type regime int

const (
	regimeClear regime = iota
	regimeBroken
	regimeOvercast
)

// Logit-scale mean and stationary standard deviation of cloud cover per
// regime: clear ~5%, broken ~50% and very variable, overcast ~99%.
var (
	regimeLogitMean = [...]float64{regimeClear: -3, regimeBroken: 0, regimeOvercast: 4.5}
	regimeLogitStd  = [...]float64{regimeClear: 0.8, regimeBroken: 1.5, regimeOvercast: 0.8}
)

// Generate returns a synthetic hourly PV series of cfg.Days*24 hours starting
// at cfg.Start, or a *ConfigError if cfg is invalid. It is deterministic in
// cfg. The model, per hour t (instantaneous values at Time[t]):
//
//   - Weather regime per local mean-solar day (clear, broken, overcast), a
//     Markov chain that keeps yesterday's regime with probability 0.6, else
//     draws from a seasonal distribution (overcast 60% of draws at the
//     winter solstice, 10% at the summer one).
//   - Cloud cover C = sigmoid(z), z a logit AR(1) with coefficient
//     CloudPersistence reverting to the regime's mean.
//   - Ambient temperature: latitude-dependent annual mean and seasonal swing
//     (warmest around July 19 in the north, January in the south), a diurnal
//     cycle peaking at 15:00 solar time damped by clouds, and a persistent
//     AR(1) anomaly.
//   - Power = CapacityKW * POA/1000 * (1 - 0.75*C^3.4) (Kasten-Czeplak cloud
//     attenuation) * (1 - 0.14 system losses) * (1 - 0.004*(Tcell - 25)) *
//     (1 + Noise*N(0,1)), clipped to [0, CapacityKW], where POA is the
//     clear-sky irradiance on the latitude-tilted plane (see ClearSky) and
//     Tcell = ambient + POA_cloudy*25/800. Power is exactly 0 while the sun
//     is at or below the horizon.
//
// The series carries Irradiance = clear-sky POA (IrradianceClearSky true),
// Temperature = ambient and Cloud = C, the inputs a forecaster may use.
func Generate(cfg SynthConfig) (*Series, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := cfg.Days * 24
	s := &Series{
		Source:             "synthetic",
		Time:               make([]time.Time, n),
		Power:              make([]float64, n),
		CapacityKW:         cfg.CapacityKW,
		Irradiance:         make([]float64, n),
		IrradianceClearSky: true,
		Temperature:        make([]float64, n),
		Cloud:              make([]float64, n),
		Site:               &Site{Latitude: cfg.Latitude, Longitude: cfg.Longitude},
	}
	rngRegime := rand.New(rand.NewPCG(cfg.Seed, streamRegime))
	rngCloud := rand.New(rand.NewPCG(cfg.Seed, streamCloud))
	rngTemp := rand.New(rand.NewPCG(cfg.Seed, streamTemp))
	rngNoise := rand.New(rand.NewPCG(cfg.Seed, streamNoise))

	absLat := math.Abs(cfg.Latitude)
	hemisphere := 1.0 // +1 north, -1 south: flips the seasons
	if cfg.Latitude < 0 {
		hemisphere = -1
	}
	annualMean := 28 - 0.4*absLat
	seasonalSwing := math.Min(0.2*absLat, 12)
	phi := cfg.CloudPersistence
	innovation := math.Sqrt(1 - phi*phi)
	lonHours := cfg.Longitude / 15

	start := cfg.Start.UTC()
	var (
		reg      regime
		z        float64 // cloud logit
		anomaly  float64 // temperature anomaly, °C
		localDay = math.MinInt
	)
	for i := range n {
		t := start.Add(time.Duration(i) * time.Hour)
		s.Time[i] = t
		doy := float64(t.YearDay())

		if d := int(math.Floor((float64(t.Unix())/3600 + lonHours) / 24)); d != localDay {
			first := localDay == math.MinInt
			localDay = d
			reg = nextRegime(rngRegime, reg, first, hemisphere*math.Cos(2*math.Pi*(doy-172)/365))
			if first {
				z = regimeLogitMean[reg] + regimeLogitStd[reg]*rngCloud.NormFloat64()
			}
		}
		if i > 0 {
			m := regimeLogitMean[reg]
			z = m + phi*(z-m) + regimeLogitStd[reg]*innovation*rngCloud.NormFloat64()
		}
		cloud := 1 / (1 + math.Exp(-z))
		s.Cloud[i] = cloud

		sun := SunAt(t, cfg.Latitude, cfg.Longitude)
		solarHour := 12 + sun.HourAngleDeg/15
		anomaly = 0.97*anomaly + 0.5*rngTemp.NormFloat64()
		ambient := annualMean +
			seasonalSwing*hemisphere*math.Cos(2*math.Pi*(doy-200)/365) +
			5*(1-0.6*cloud)*math.Cos(2*math.Pi*(solarHour-15)/24) +
			anomaly
		s.Temperature[i] = ambient

		cs := ClearSky(t, cfg.Latitude, cfg.Longitude)
		s.Irradiance[i] = cs.POA
		if sun.ElevationDeg <= 0 {
			continue // Power[i] stays exactly 0
		}
		poa := cs.POA * (1 - 0.75*math.Pow(cloud, 3.4))
		cell := ambient + poa*cellHeating
		p := cfg.CapacityKW * poa / 1000 * (1 - systemLosses) * (1 + tempCoeff*(cell-25)) *
			(1 + cfg.Noise*rngNoise.NormFloat64())
		s.Power[i] = math.Max(0, math.Min(cfg.CapacityKW, p))
	}
	return s, nil
}

// nextRegime draws the weather regime of the next day. summer is +1 at the
// local summer solstice and -1 at the winter one.
func nextRegime(r *rand.Rand, prev regime, first bool, summer float64) regime {
	if !first && r.Float64() < regimeStay {
		return prev
	}
	pClear := 0.30 + 0.10*summer
	pOvercast := 0.35 - 0.25*summer
	switch u := r.Float64(); {
	case u < pClear:
		return regimeClear
	case u < pClear+pOvercast:
		return regimeOvercast
	default:
		return regimeBroken
	}
}
