package solar

import (
	"fmt"
	"time"
)

// Query is one forecast to make: the forecaster's input for the Horizon hours from Times[0], read
// from the Lookback hours of a history before it.
type Query struct {
	X          []float32   // [Steps][Features], normalised
	Times      []time.Time // the target hours, UTC
	ClearSkyKW []float64   // their clear-sky power
	CLIPERKW   []float64   // the CLIPER baseline's forecast of them, kW
	cliper     []float64   // CLIPER's clear-sky index
	prep       *Preprocessing
}

// Query prepares the forecast of the Horizon hours from at (on the hour) from the Lookback hours
// of s before it, which must all be there. A zero at means the hour after s's last.
func (p *Preprocessing) Query(s *Series, at time.Time) (*Query, error) {
	if err := p.Accepts(s); err != nil {
		return nil, err
	}
	if s.Len() == 0 {
		return nil, fmt.Errorf("%s has no hours", s.Source)
	}
	last := s.Time[s.Len()-1]
	if at.IsZero() {
		at = last.Add(time.Hour)
	}
	at = at.UTC()
	if !at.Equal(at.Truncate(time.Hour)) {
		return nil, fmt.Errorf("forecast time %s is not on the hour", at.Format(time.RFC3339))
	}
	from := at.Add(-time.Duration(p.Lookback) * time.Hour)
	switch {
	case from.Before(s.Time[0]):
		return nil, fmt.Errorf("%s starts at %s: a forecast from %s needs the %d hours from %s", s.Source,
			stamp(s.Time[0]), stamp(at), p.Lookback, stamp(from))
	case at.After(last.Add(time.Hour)):
		return nil, fmt.Errorf("%s ends at %s: a forecast from %s needs the %d hours up to %s", s.Source,
			stamp(last), stamp(at), p.Lookback, stamp(at.Add(-time.Hour)))
	}
	start := int(at.Sub(s.Time[0]) / time.Hour)
	h := p.derive(s)
	p.inputRows(h)
	q := &Query{X: make([]float32, p.Steps()*len(p.Features)), prep: p}
	kp, newest, ok := p.persistence(h, start)
	for j := range p.Horizon {
		t := at.Add(time.Duration(j) * time.Hour)
		cs := p.Plant.ClearSkyKW(t)
		kc := p.cliper(kp, newest, ok, start+j, t)
		q.Times = append(q.Times, t)
		q.ClearSkyKW = append(q.ClearSkyKW, cs)
		q.cliper = append(q.cliper, kc)
		q.CLIPERKW = append(q.CLIPERKW, p.clampKW(kc*cs, cs))
	}
	p.input(h, start, q.Times, q.X)
	return q, nil
}

// PowerKW turns the forecaster's outputs for q (Horizon values) into kW, as Windows.ForecastKW.
func (q *Query) PowerKW(out []float32) []float64 {
	kw := make([]float64, len(out))
	for j, o := range out {
		kw[j] = q.prep.toKW(o, q.ClearSkyKW[j], q.cliper[j])
	}
	return kw
}
