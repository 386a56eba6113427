// Package eventstest reads the event log of a run dir in tests, with typed filters.
package eventstest

import (
	"path/filepath"
	"testing"

	"spottrain/events"
)

// Read reads the event log of runDir, failing the test if it cannot.
func Read(t testing.TB, runDir string) []events.Event {
	t.Helper()
	evs, err := events.Read(filepath.Join(runDir, events.FileName))
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// Of returns the payloads of type T of evs, in order.
func Of[T events.Payload](evs []events.Event) []T {
	var out []T
	for _, e := range evs {
		if p, ok := e.Payload.(T); ok {
			out = append(out, p)
		}
	}
	return out
}

// Index returns the index in evs of the i-th event (0 the first, -1 the last) with a payload of
// type T, or -1 if there is none.
func Index[T events.Payload](evs []events.Event, i int) int {
	var at []int
	for k, e := range evs {
		if _, ok := e.Payload.(T); ok {
			at = append(at, k)
		}
	}
	if i < 0 {
		i += len(at)
	}
	if i < 0 || i >= len(at) {
		return -1
	}
	return at[i]
}
