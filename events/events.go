// Package events is the append-only event log of a run: events.jsonl in the run directory, one
// JSON object per line, for the analysis of what a run did across its incarnations (the
// processes that ran it, each killed or preempted in turn).
//
// Every event has these fields first, then its own ones in alphabetical order:
//
//	time         string  RFC 3339 with nanoseconds, UTC
//	type         string  one of the types below (others are allowed, with no required fields)
//	incarnation  int     1 for the first process that wrote the log, +1 for each later one
//
// The types and their required fields (Emit refuses an event of a known type that lacks one;
// more fields are allowed):
//
//	run_start             config_hash (hex string), device (string), pid (int), libtorch (string)
//	resume                step (int), epoch (int), batch (int, next batch to run), dir (string: checkpoint)
//	checkpoint_begin      step (int), reason ("periodic", "emergency" or "final")
//	checkpoint_commit     step, reason, blocking_ms (float: the training loop was blocked),
//	                      persist_ms (float: background write), bytes (int: payload), dir
//	checkpoint_failed     error (string: a checkpoint could not be saved; training went on)
//	checkpoint_invalid    dir (string), reason (string: why it was skipped)
//	signal_received       signal (string, e.g. "terminated")
//	emergency_checkpoint  step (int)
//	epoch_end             epoch (int), step (int), train_loss (float), metrics (object of floats)
//	exit                  code (int: the exit status), reason (string), step (int)
//
// Numbers decode as float64 in Event.Fields. A non-finite float (a diverged loss) is written as
// the string "NaN", "+Inf" or "-Inf", since JSON has no such numbers; that applies to float64
// and float32 values and to the values of a map[string]float64.
//
// # Guarantees
//
// Each event is one write of one whole line on a file opened with O_APPEND, under a mutex. Once
// Emit returns, the event survives the death of the process; checkpoint_commit,
// emergency_checkpoint and exit are also fsynced first, so they (and every event before them)
// survive a power loss. A crash in the middle of a write leaves at most a torn last line: Open
// cuts it off, Read ignores it; a failed write is cut off by Emit itself. So the log is always
// whole lines, provided it has one writer at a time: open it only while holding the run directory
// (checkpoint.Open).
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"
)

// FileName is the name of the log in the run directory.
const FileName = "events.jsonl"

// The event types of spottrain; see the package documentation for their fields.
const (
	RunStart            = "run_start"
	Resume              = "resume"
	CheckpointBegin     = "checkpoint_begin"
	CheckpointCommit    = "checkpoint_commit"
	CheckpointFailed    = "checkpoint_failed"
	CheckpointInvalid   = "checkpoint_invalid"
	SignalReceived      = "signal_received"
	EmergencyCheckpoint = "emergency_checkpoint"
	EpochEnd            = "epoch_end"
	Exit                = "exit"
)

// required lists the fields each known type must have.
var required = map[string][]string{
	RunStart:            {"config_hash", "device", "pid", "libtorch"},
	Resume:              {"step", "epoch", "batch", "dir"},
	CheckpointBegin:     {"step", "reason"},
	CheckpointCommit:    {"step", "reason", "blocking_ms", "persist_ms", "bytes", "dir"},
	CheckpointFailed:    {"error"},
	CheckpointInvalid:   {"dir", "reason"},
	SignalReceived:      {"signal"},
	EmergencyCheckpoint: {"step"},
	EpochEnd:            {"epoch", "step", "train_loss", "metrics"},
	Exit:                {"code", "reason", "step"},
}

// durable are the types fsynced before Emit returns.
var durable = map[string]bool{CheckpointCommit: true, EmergencyCheckpoint: true, Exit: true}

// file is what Log needs of an *os.File (a seam for tests).
type file interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Log is an open event log. It is safe for concurrent use.
type Log struct {
	path        string
	incarnation int

	mu     sync.Mutex
	f      file
	size   int64 // of the file: everything up to the last whole line written
	closed bool
}

// Open opens, or creates, runDir/events.jsonl for appending. The incarnation of this process is
// one more than the largest incarnation in the log (lines that do not parse are skipped), or 1.
// A torn last line (no newline: a crash in the middle of a write) is cut off first, or ended with
// a newline if it is a whole event, so the next event starts on a new line.
func Open(runDir string) (*Log, error) {
	path := filepath.Join(runDir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o644)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	l, err := open(path, f, created)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	return l, nil
}

func open(path string, f *os.File, created bool) (*Log, error) {
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	whole := data[:bytes.LastIndexByte(data, '\n')+1]
	if tail := data[len(whole):]; len(tail) > 0 {
		if _, err := parse(tail); err == nil {
			// A whole event that lost only its newline: keep it.
			if _, err := f.Write([]byte{'\n'}); err != nil {
				return nil, err
			}
			whole = append(data, '\n')
		} else if err := f.Truncate(int64(len(whole))); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	last := 0
	for line := range bytes.Lines(whole) {
		var ev struct {
			Incarnation int `json:"incarnation"`
		}
		if json.Unmarshal(line, &ev) == nil {
			last = max(last, ev.Incarnation)
		}
	}
	return &Log{path: path, incarnation: last + 1, f: f, size: int64(len(whole))}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// Incarnation is the incarnation of this process, written in every event it emits.
func (l *Log) Incarnation() int { return l.incarnation }

// Emit appends an event of type typ with fields (the keys time, type and incarnation are
// reserved) as one line, and fsyncs the log for checkpoint_commit, emergency_checkpoint and exit.
// An event of a known type must have the required fields of its type. If the write fails, what it
// wrote is cut off (best effort), so the log stays whole lines.
func (l *Log) Emit(typ string, fields map[string]any) error {
	line, err := encode(time.Now(), typ, l.incarnation, fields)
	if err != nil {
		return fmt.Errorf("emit %s event: %w", typ, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("emit %s event: log %s is closed", typ, l.path)
	}
	if _, err := l.f.Write(line); err != nil {
		if terr := l.f.Truncate(l.size); terr != nil {
			err = errors.Join(err, fmt.Errorf("cut off the partial line: %w", terr))
		}
		return fmt.Errorf("emit %s event to %s: %w", typ, l.path, err)
	}
	l.size += int64(len(line))
	if durable[typ] {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("emit %s event to %s: %w", typ, l.path, err)
		}
	}
	return nil
}

// encode is the line of an event, newline included.
func encode(t time.Time, typ string, incarnation int, fields map[string]any) ([]byte, error) {
	if typ == "" {
		return nil, errors.New("empty event type")
	}
	for _, k := range []string{"time", "type", "incarnation"} {
		if _, ok := fields[k]; ok {
			return nil, fmt.Errorf("field %q is reserved", k)
		}
	}
	for _, k := range required[typ] {
		if _, ok := fields[k]; !ok {
			return nil, fmt.Errorf("missing field %q", k)
		}
	}
	var b bytes.Buffer
	typJSON, _ := json.Marshal(typ) // a string always encodes
	b.WriteString(`{"time":"` + t.UTC().Format(time.RFC3339Nano) + `","type":`)
	b.Write(typJSON)
	b.WriteString(`,"incarnation":` + strconv.Itoa(incarnation))
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		value, err := json.Marshal(finite(fields[k]))
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", k, err)
		}
		key, _ := json.Marshal(k)
		b.WriteByte(',')
		b.Write(key)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// finite replaces non-finite floats, which JSON cannot hold, by strings.
func finite(v any) any {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nonFinite(x)
		}
	case float32:
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return nonFinite(f)
		}
	case map[string]float64:
		out := make(map[string]any, len(x))
		for k, f := range x {
			out[k] = finite(f)
		}
		return out
	}
	return v
}

func nonFinite(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case f > 0:
		return "+Inf"
	default:
		return "-Inf"
	}
}

// Close closes the log; closing twice is a no-op. Emit fails after Close.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("close event log %s: %w", l.path, err)
	}
	return nil
}

// Event is one event of a log, as Read returns it.
type Event struct {
	Time        time.Time
	Type        string
	Incarnation int
	Fields      map[string]any // the other fields, as encoding/json decodes them; never nil
}

// Read reads a log. A last line without newline (a crash, or a write in progress) is read if it
// is a whole event and ignored if not; any other line that is not an event is an error naming its
// line number.
func Read(path string) ([]Event, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	var events []Event
	n := 0
	for line := range bytes.Lines(data) {
		n++
		ev, err := parse(line)
		if err != nil {
			if line[len(line)-1] != '\n' {
				break // torn last line
			}
			return nil, fmt.Errorf("read events %s: line %d: %w", path, n, err)
		}
		events = append(events, ev)
	}
	return events, nil
}

func parse(line []byte) (Event, error) {
	var fields map[string]any
	if err := json.Unmarshal(line, &fields); err != nil {
		return Event{}, err
	}
	ts, ok := fields["time"].(string)
	if !ok {
		return Event{}, errors.New("no time")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return Event{}, err
	}
	typ, ok := fields["type"].(string)
	if !ok || typ == "" {
		return Event{}, errors.New("no type")
	}
	inc, ok := fields["incarnation"].(float64)
	if !ok || inc < 1 || inc > math.MaxInt32 || inc != math.Trunc(inc) {
		return Event{}, errors.New("no incarnation")
	}
	delete(fields, "time")
	delete(fields, "type")
	delete(fields, "incarnation")
	return Event{Time: t.UTC(), Type: typ, Incarnation: int(inc), Fields: fields}, nil
}
