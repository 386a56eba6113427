package preemption

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// DefaultGrace is the time between SIGTERM and SIGKILL that WithDefaults gives a zero Grace, as on
// GCP.
const DefaultGrace = 30 * time.Second

// PatternNone is the Pattern of an on-demand run: never interrupted.
const PatternNone = "none"

// Patterns are the values of Config.Pattern.
var Patterns = []string{PatternNone, "regular", "poisson", "bursty"}

// Config is the simulated spot market of `spottrain run`: when the trainer is interrupted, with
// or without notice, and how long a new VM takes. It is the interrupts section of a spottrain
// config, decoded straight into it: the yaml tags are its keys, and Validate names a bad value by
// its key. Pattern picks which pattern keys apply: "regular" (Every, Jitter), "poisson"
// (RatePerHour) or "bursty" (QuietRatePerHour, StormRatePerHour, QuietMean, StormMean); "none"
// (on demand) none. Durations are spot time, which passes TimeScale times faster than wall time,
// except Grace.
type Config struct {
	Pattern string `yaml:"pattern"` // none (on demand), regular, poisson or bursty
	Seed    uint64 `yaml:"seed"`    // of the pattern; ForRun adds the run index
	// regular
	Every  time.Duration `yaml:"every"`
	Jitter float64       `yaml:"jitter"` // each gap stretched by a factor in [1-jitter, 1+jitter]
	// poisson
	RatePerHour float64 `yaml:"rate_per_hour"`
	// bursty: quiet and storm phases of exponential lengths, a Poisson rate in each
	QuietRatePerHour float64       `yaml:"quiet_rate_per_hour"`
	StormRatePerHour float64       `yaml:"storm_rate_per_hour"`
	QuietMean        time.Duration `yaml:"quiet_mean"`
	StormMean        time.Duration `yaml:"storm_mean"`

	NoNoticeShare float64       `yaml:"no_notice_share"` // in [0, 1]: the share of interrupts that come as a bare SIGKILL
	Grace         time.Duration `yaml:"grace"`           // SIGTERM to SIGKILL, wall time; > 0
	RestartDelay  time.Duration `yaml:"restart_delay"`   // re-provisioning a VM; >= 0
	TimeScale     float64       `yaml:"time_scale"`      // spot seconds per wall second; > 0
	// Machines is the size of the simulated job: machines interrupted independently by the
	// pattern, any interruption stopping the job; in [1, MaxMachines].
	Machines int `yaml:"machines"`
}

// MaxMachines bounds Config.Machines: each simulated machine runs a trainer process on this one.
const MaxMachines = 1024

// ForRun returns c for run index (0, 1, ...) of an experiment: its Seed plus index, so that
// repetitions draw different interrupts and each is reproducible.
func (c Config) ForRun(index int) Config {
	c.Seed += uint64(index)
	return c
}

// WithDefaults returns c with a zero Grace replaced by DefaultGrace, and a zero TimeScale or
// Machines by 1.
func (c Config) WithDefaults() Config {
	if c.Machines == 0 {
		c.Machines = 1
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.TimeScale == 0 {
		c.TimeScale = 1
	}
	return c
}

// pattern returns the pattern Pattern names, unvalidated.
func (c Config) pattern() (Pattern, error) {
	switch c.Pattern {
	case "regular":
		return Regular{Every: c.Every, Jitter: c.Jitter}, nil
	case "poisson":
		return Poisson{Rate: c.RatePerHour}, nil
	case "bursty":
		return Bursty{QuietRate: c.QuietRatePerHour, StormRate: c.StormRatePerHour, QuietMean: c.QuietMean, StormMean: c.StormMean}, nil
	default:
		return nil, fieldErr("pattern", "must be one of %s (got %q)", strings.Join(Patterns, ", "), c.Pattern)
	}
}

// Validate reports the first bad value of c, as given (a zero Grace, TimeScale or Machines is
// one: see WithDefaults), as a *FieldError naming its key. The keys of the pattern and
// no_notice_share are checked unless Pattern is none; grace, restart_delay, time_scale and
// machines always.
func (c Config) Validate() error {
	if c.Pattern != PatternNone {
		p, err := c.pattern()
		if err != nil {
			return err
		}
		if err := p.Validate(); err != nil {
			return err
		}
		if err := checkShare(c.NoNoticeShare); err != nil {
			return err
		}
	}
	switch {
	case !(c.Grace > 0):
		return fieldErr("grace", "must be > 0 (got %s)", c.Grace)
	case c.RestartDelay < 0:
		return fieldErr("restart_delay", "must be >= 0 (got %s)", c.RestartDelay)
	case !(c.TimeScale > 0 && !math.IsInf(c.TimeScale, 0)):
		return fieldErr("time_scale", "must be > 0 (got %v)", c.TimeScale)
	}
	return checkMachines(c.Machines)
}

// Schedule validates c.WithDefaults() and returns its seeded Schedule; nil when Pattern is none.
func (c Config) Schedule() (*Schedule, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Pattern == PatternNone {
		return nil, nil
	}
	p, _ := c.pattern() // validated above
	return NewJobSchedule(p, c.Seed, c.NoNoticeShare, c.Machines)
}

// checkMachines wants a number of machines in [1, MaxMachines].
func checkMachines(n int) error {
	if n < 1 || n > MaxMachines {
		return fieldErr("machines", "must be in [1, %d] (got %d)", MaxMachines, n)
	}
	return nil
}

// checkShare wants a no-notice share in [0, 1].
func checkShare(share float64) error {
	if !(share >= 0 && share <= 1) {
		return fieldErr("no_notice_share", "must be in [0, 1], got %g", share)
	}
	return nil
}

// FieldError is a bad configuration value. Key is its key in Config's yaml tags (for a
// pattern's own struct too: Poisson.Rate is rate_per_hour), e.g. "rate_per_hour".
type FieldError struct {
	Key string
	Msg string
}

// Error formats e as "key: msg".
func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

func fieldErr(key, format string, args ...any) error {
	return &FieldError{Key: key, Msg: fmt.Sprintf(format, args...)}
}
