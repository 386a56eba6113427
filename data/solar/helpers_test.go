package solar_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"spottrain/data/solar"
)

// wantParseError asserts that err is a *solar.ParseError for file at line,
// printed as one line "file:line: ..." containing every fragment.
func wantParseError(t *testing.T, err error, file string, line int, fragments ...string) {
	t.Helper()
	var pe *solar.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T), want *solar.ParseError", err, err)
	}
	if pe.File != file || pe.Line != line {
		t.Errorf("error at %s:%d, want %s:%d (%v)", pe.File, pe.Line, file, line, err)
	}
	msg := err.Error()
	prefix := file + ": "
	if line > 0 {
		prefix = file + ":" + strconv.Itoa(line) + ": "
	}
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("error %q does not start with %q", msg, prefix)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q is not one line", msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not mention %q", msg, f)
		}
	}
}

// wantConfigError asserts that err is a *solar.ConfigError for field.
func wantConfigError(t *testing.T, err error, field string) {
	t.Helper()
	var ce *solar.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T), want *solar.ConfigError", err, err)
	}
	if ce.Field != field {
		t.Errorf("error names field %q, want %q (%v)", ce.Field, field, err)
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name %q", err, field)
	}
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// hourly returns n hours from start, UTC.
func hourly(start time.Time, n int) []time.Time {
	ts := make([]time.Time, n)
	for i := range ts {
		ts[i] = start.Add(time.Duration(i) * time.Hour)
	}
	return ts
}
