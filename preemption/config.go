package preemption

import (
	"math"
	"time"
)

// DefaultGrace is the time between SIGTERM and SIGKILL when Config.Grace is zero, as on GCP.
const DefaultGrace = 30 * time.Second

// Config describes an interrupt experiment in flat, config-file-friendly fields. Kind picks which
// pattern fields apply: "regular" (Every, Jitter), "poisson" (RatePerHour) or "bursty"
// (QuietRatePerHour, StormRatePerHour, QuietMean, StormMean). Durations are spot time.
type Config struct {
	Kind string
	Seed uint64

	Every  time.Duration
	Jitter float64

	RatePerHour float64

	QuietRatePerHour, StormRatePerHour float64
	QuietMean, StormMean               time.Duration

	NoNoticeShare float64       // in [0, 1]: the share of interrupts that come as a bare SIGKILL
	Grace         time.Duration // SIGTERM to SIGKILL; 0 means DefaultGrace
	RestartDelay  time.Duration // re-provisioning a VM; >= 0
	TimeScale     float64       // spot seconds per wall second; 0 means 1
}

// WithDefaults returns c with zero Grace and TimeScale replaced by their defaults.
func (c Config) WithDefaults() Config {
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	return c
}

// Pattern returns the pattern Kind names, validated; errors are *FieldError with Config's names.
func (c Config) Pattern() (Pattern, error) {
	var p Pattern
	rename := map[string]string{}
	switch c.Kind {
	case "regular":
		p = Regular{Every: c.Every, Jitter: c.Jitter}
	case "poisson":
		p = Poisson{Rate: c.RatePerHour}
		rename["Rate"] = "RatePerHour"
	case "bursty":
		p = Bursty{QuietRate: c.QuietRatePerHour, StormRate: c.StormRatePerHour, QuietMean: c.QuietMean, StormMean: c.StormMean}
		rename["QuietRate"], rename["StormRate"] = "QuietRatePerHour", "StormRatePerHour"
	default:
		return nil, fieldErr("Kind", "must be regular, poisson or bursty, got %q", c.Kind)
	}
	if err := p.Validate(); err != nil {
		if fe, ok := err.(*FieldError); ok && rename[fe.Field] != "" {
			return nil, &FieldError{Field: rename[fe.Field], Msg: fe.Msg}
		}
		return nil, err
	}
	return p, nil
}

// Validate checks c after WithDefaults; errors are *FieldError naming the field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if _, err := c.Pattern(); err != nil {
		return err
	}
	if !(c.NoNoticeShare >= 0 && c.NoNoticeShare <= 1) {
		return fieldErr("NoNoticeShare", "must be in [0, 1], got %g", c.NoNoticeShare)
	}
	if c.Grace < 0 {
		return fieldErr("Grace", "must be >= 0, got %s", c.Grace)
	}
	if c.RestartDelay < 0 {
		return fieldErr("RestartDelay", "must be >= 0, got %s", c.RestartDelay)
	}
	if !(c.TimeScale > 0 && !math.IsInf(c.TimeScale, 0)) {
		return fieldErr("TimeScale", "must be positive and finite, got %g", c.TimeScale)
	}
	return nil
}

// Schedule validates c and returns its seeded Schedule.
func (c Config) Schedule() (*Schedule, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p, _ := c.Pattern() // validated above
	return NewSchedule(p, c.Seed, c.NoNoticeShare)
}
