package solar

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// fit fits the Preprocessing of mi to the first trainEnd hours of s and returns it with what it
// derives from every hour of s.
func fit(s *Series, wc WindowConfig, mi ModelInputs, trainEnd int) (*Preprocessing, *derived, error) {
	if !slices.Contains(Targets, mi.Target) {
		return nil, nil, &ConfigError{Field: "ModelInputs.Target", Msg: fmt.Sprintf("must be one of %v, got %q", Targets, mi.Target)}
	}
	if s.Site == nil {
		return nil, nil, fmt.Errorf("series %q: the clear-sky model needs the plant's site (latitude and longitude)", s.Source)
	}
	plane := DefaultPlane(*s.Site)
	if s.Plane != nil {
		plane = *s.Plane
	}
	p := &Preprocessing{
		Version:           PreprocessingVersion,
		ClearSkyModel:     ClearSkyModel,
		Plant:             Plant{Site: *s.Site, Plane: plane, CapacityKW: s.CapacityKW, SampleOffset: s.SampleOffset},
		DaylightZenithDeg: DaylightZenithDeg,
		MaxClearSkyIndex:  MaxClearSkyIndex,
		Lookback:          wc.Lookback,
		Horizon:           wc.Horizon,
		Target:            mi.Target,
		FutureInputs:      mi.FutureInputs,
		Features:          featureNames(s, mi.FutureInputs),
		PersistenceHours:  PersistenceHours,
	}
	if !(p.Plant.CapacityKW > 0) {
		return nil, nil, fmt.Errorf("series %q: capacity %v kW: the plant's capacity must be above 0", s.Source, s.CapacityKW)
	}
	h := p.derive(s)
	if err := p.checkNight(h); err != nil {
		return nil, nil, err
	}
	if err := p.fitClimatology(h, trainEnd); err != nil {
		return nil, nil, err
	}
	p.fitNormalization(h, trainEnd)
	p.inputRows(h)
	p.fitCLIPER(h, trainEnd)
	return p, h, nil
}

// checkNight returns an error wrapping ErrPowerAtNight when the plant produces at night by the clock of the series: more
// than 2% of the hours with the sun 2° or more below the horizon (and at least 24) with power
// above 5% of capacity. Its site is then wrong, or its times are not UTC, and every clear-sky
// quantity would be shifted against the power.
func (p *Preprocessing) checkNight(h *derived) error {
	var night, lit int
	var first time.Time
	for i, t := range h.s.Time {
		if h.elevation[i] > -2 {
			continue
		}
		night++
		if h.s.Power[i] > 0.05*p.Plant.CapacityKW {
			if lit == 0 {
				first = t
			}
			lit++
		}
	}
	if lit >= 24 && float64(lit) > 0.02*float64(night) {
		return fmt.Errorf("series %q: power above 5%% of capacity at %d of its %d night hours at %.3f°, %.3f° (the first at %s): %w",
			h.s.Source, lit, night, p.Plant.Site.Latitude, p.Plant.Site.Longitude, stamp(first), ErrPowerAtNight)
	}
	return nil
}

// featureNames lists the features of a series with the optional columns of s.
func featureNames(s *Series, future bool) []string {
	names := []string{FeatureHourSin, FeatureHourCos, FeatureDayOfYearSin, FeatureDayOfYearCos, FeatureClearSky, FeatureClimatology}
	if future {
		names = append(names, FeatureObserved)
	}
	if s.Irradiance != nil && !s.IrradianceClearSky { // the clear-sky proxy adds nothing to clearsky
		names = append(names, FeatureIrradiance)
	}
	if s.Temperature != nil {
		names = append(names, FeatureTemperature)
	}
	if s.Cloud != nil {
		names = append(names, FeatureCloud)
	}
	return append(names, FeatureClearSkyIndex, FeaturePower)
}

// fitClimatology sets the climatology: per month and UTC hour, the energy-weighted clear-sky index
// ΣP/ΣP_clearsky of the measured daylight hours among the first n of h; a cell without any takes
// its month's, a month without any the whole split's.
func (p *Preprocessing) fitClimatology(h *derived, n int) error {
	var power, cs [12][24]float64
	var monthP, monthCS [12]float64
	var allP, allCS float64
	for i := range n {
		if !h.scored(i) {
			continue
		}
		t := h.s.Time[i].UTC()
		m, hr := t.Month()-1, t.Hour()
		power[m][hr] += h.s.Power[i]
		cs[m][hr] += h.cs[i]
		monthP[m] += h.s.Power[i]
		monthCS[m] += h.cs[i]
		allP += h.s.Power[i]
		allCS += h.cs[i]
	}
	if allCS == 0 {
		return fmt.Errorf("series %q: no measured daylight hour in the training split", h.s.Source)
	}
	for m := range 12 {
		for hr := range 24 {
			switch {
			case cs[m][hr] > 0:
				p.Climatology[m][hr] = power[m][hr] / cs[m][hr]
			case monthCS[m] > 0:
				p.Climatology[m][hr] = monthP[m] / monthCS[m]
			default:
				p.Climatology[m][hr] = allP / allCS
			}
			p.Climatology[m][hr] = math.Min(p.Climatology[m][hr], p.MaxClearSkyIndex)
		}
	}
	return nil
}

// fitNormalization sets each feature's mean and population standard deviation over the first n
// hours of h (a constant feature gets Std 1). The observed flag, 1 on every measured row and 0 on
// target rows, is left as it is (mean 0, std 1).
func (p *Preprocessing) fitNormalization(h *derived, n int) {
	nf := len(p.Features)
	p.Mean, p.Std = make([]float64, nf), make([]float64, nf)
	r := make([]float64, nf)
	var sq = make([]float64, nf)
	for i := range n {
		p.pastRow(h, i, r)
		for f, v := range r {
			p.Mean[f] += v
			sq[f] += v * v
		}
	}
	for f := range nf {
		mean := p.Mean[f] / float64(n)
		std := math.Sqrt(math.Max(0, sq[f]/float64(n)-mean*mean))
		if std < 1e-9 || p.Features[f] == FeatureObserved {
			mean, std = 0, 1
		}
		p.Mean[f], p.Std[f] = mean, std
	}
}

// fitCLIPER sets CLIPER's weight ρ for each lag: over the training windows' measured daylight
// target hours, the least-squares weight of the persistence index's anomaly from the target hour's
// climatology in predicting the target's anomaly, each hour weighted by its squared clear-sky
// power (so that it minimises the squared error in kW), within [0, 1]. For anomalies of equal
// variance this is their lag correlation, the ρ of Yang's CLIPER. A lag of fewer than
// minCLIPERPairs such hours (rare: a target past the next day's sunset hour) takes the weight of the
// nearest shorter lag that has enough.
func (p *Preprocessing) fitCLIPER(h *derived, n int) {
	lags := p.Lookback + p.Horizon
	num, den, pairs := make([]float64, lags), make([]float64, lags), make([]int, lags)
	for start := p.Lookback; start+p.Horizon <= n; start++ {
		kp, newest, ok := p.persistence(h, start)
		if !ok {
			continue
		}
		for i := start; i < start+p.Horizon; i++ {
			if !h.scored(i) {
				continue
			}
			clim := p.climatology(h.s.Time[i])
			w := h.cs[i] * h.cs[i]
			lag := min(i-newest, lags) - 1
			num[lag] += w * (kp - clim) * (h.k[i] - clim)
			den[lag] += w * (kp - clim) * (kp - clim)
			pairs[lag]++
		}
	}
	p.CLIPERWeight = make([]float64, lags)
	for lag := range lags {
		switch {
		case pairs[lag] >= minCLIPERPairs && den[lag] > 0:
			p.CLIPERWeight[lag] = math.Max(0, math.Min(1, num[lag]/den[lag]))
		case lag > 0:
			p.CLIPERWeight[lag] = p.CLIPERWeight[lag-1]
		}
	}
}

// minCLIPERPairs is the fewest target hours from which fitCLIPER fits a lag's weight.
const minCLIPERPairs = 50

// Accepts returns an error when s cannot be the history of p's plant: another site or capacity
// (where s says), or a missing input the forecaster reads.
func (p *Preprocessing) Accepts(s *Series) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if site := s.Site; site != nil && (math.Abs(site.Latitude-p.Plant.Site.Latitude) > 0.01 || math.Abs(site.Longitude-p.Plant.Site.Longitude) > 0.01) {
		return fmt.Errorf("%s is for a plant at %.3f°, %.3f°; the model was trained for one at %.3f°, %.3f°",
			s.Source, site.Latitude, site.Longitude, p.Plant.Site.Latitude, p.Plant.Site.Longitude)
	}
	if s.CapacityKW > p.Plant.CapacityKW*1.0001 {
		return fmt.Errorf("%s has a capacity of %g kW (or such a peak), above the %g kW of the plant the model was trained for", s.Source, s.CapacityKW, p.Plant.CapacityKW)
	}
	for _, f := range p.Features {
		var missing bool
		switch f {
		case FeatureIrradiance:
			missing = s.Irradiance == nil || s.IrradianceClearSky
		case FeatureTemperature:
			missing = s.Temperature == nil
		case FeatureCloud:
			missing = s.Cloud == nil
		}
		if missing {
			return fmt.Errorf("%s has no %s column, which the model reads", s.Source, f)
		}
	}
	return nil
}
