package solar

import (
	"errors"
	"fmt"
)

// ParseError reports a problem in an input file. Its message is one line,
// "file:line: msg" (or "file: msg" when Line is 0), so a command can print it
// as is and map it to a usage exit code with errors.As.
type ParseError struct {
	File string // path as given to the reader
	Line int    // 1-based line number; 0 when the problem concerns the whole file
	Msg  string // one line, without the file and line
	// Option is the field of CSVOptions ("TimeColumn", "PowerColumn", "MaxGapFillHours") whose
	// setting would accept the file, or "": a caller names it in its own terms.
	Option string
}

func (e *ParseError) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ConfigError reports an invalid field of a configuration struct
// (SynthConfig, WindowConfig or CSVOptions).
type ConfigError struct {
	Field string // qualified field name, e.g. "SynthConfig.Days"
	Msg   string // what is wrong, one line
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Msg)
}

// ErrPowerAtNight is wrapped by the error of a series whose plant produces while the sun is well
// below the horizon at its site, by the clock of its timestamps.
var ErrPowerAtNight = errors.New("the plant's site is wrong or its times are not UTC")
