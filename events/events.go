// Package events is the append-only event log of a run: events.jsonl in the run directory, one
// JSON object per line, for the analysis of what a run did across its incarnations (the
// processes that ran it, each killed or preempted in turn).
//
// Every event has these fields first, then its own ones in alphabetical order:
//
//	time         string  RFC 3339 with nanoseconds, UTC
//	type         string  one of the types below (others are allowed, with no required fields)
//	incarnation  int     1 for the first trainer process that wrote the log, +1 for each later
//	                     one; 0 for the runner that supervises them (spottrain run, OpenRunner)
//
// The types and their required fields (Emit refuses an event of a known type that lacks one;
// more fields are allowed):
//
//	run_start             config_hash (hex string), device (string), pid (int), libtorch (string);
//	                      also training_hash (configs.Config.TrainingHash), total_steps (int)
//	resume                step (int), epoch (int), batch (int, next batch to run), dir (string: checkpoint)
//	checkpoint_begin      step (int), reason ("periodic", "emergency", "final" or "milestone")
//	checkpoint_commit     step, reason, blocking_ms (float: the training loop was blocked),
//	                      persist_ms (float: background write), bytes (int: payload), dir
//	checkpoint_failed     error (string: a checkpoint could not be saved; training went on)
//	checkpoint_invalid    dir (string), reason (string: why it was skipped)
//	signal_received       signal (string: "terminated", "interrupt", or a cloud's notice from its
//	                      metadata server, e.g. "GCP preemption notice")
//	emergency_checkpoint  step (int)
//	epoch_end             epoch (int), step (int), train_loss (float), metrics (object of floats)
//	progress              step (int), epoch (int), loss (float): a log line's worth of training
//	exit                  code (int: the exit status), reason (string), step (int)
//	checkpoint_upload     step (int), bytes (int: payload sent; 0 if the remote had it),
//	                      upload_ms (float); also pruned, superseded (lists of steps), warning
//	checkpoint_upload_failed  step (int), error (string): the remote keeps what it had
//	checkpoint_download   step (int), url (string), bytes (int), download_ms (float): a run dir
//	                      without a newer checkpoint took the remote's newest valid one
//
// The runner's types (incarnation 0):
//
//	runner_start          a runner took the run up: name, index, pattern, seed, time_scale,
//	                      no_notice_share, pid (none required)
//	interrupt_sent        kind ("notice": SIGTERM, or "kill": SIGKILL), reason ("schedule",
//	                      "grace": the notice's grace period ran out, or "cancel": Ctrl+C), pid
//	child_exit            pid (int), code (int: -1 when killed by a signal), signal (string, ""
//	                      if none), caused (bool: the runner signalled this child)
//	restart               attempt (int: 1 for the first restart), delay_s (float: spot time
//	                      without a VM; the runner waits it out, scaled, before the next start)
//	child_start           attempt (int: 0 for the first start), pid (int): a trainer process began
//
// Numbers decode as float64 in Event.Fields. A non-finite float (a diverged loss) is written as
// the string "NaN", "+Inf" or "-Inf", since JSON has no such numbers; that applies to float64
// and float32 values and to the values of a map[string]float64.
//
// # Guarantees
//
// Each event is one write of one whole line on a file opened with O_APPEND, under a mutex and an
// exclusive flock of the file (so a runner and a trainer never interleave a write with a repair). Once
// Emit returns, the event survives the death of the process; checkpoint_commit,
// emergency_checkpoint, exit and child_exit are also fsynced first, so they (and every event
// before them) survive a power loss. A crash in the middle of a write leaves at most a torn last
// line: Open and the runner's Emit cut it off, Read ignores it; a failed write is cut off by Emit
// itself. So the log is always whole lines, with at most two writers: one trainer (Open it only
// while holding the run directory, checkpoint.Open) and one runner (OpenRunner), whose lines
// interleave whole since each is a single append.
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
	"syscall"
	"time"

	"spottrain/internal/durable"
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
	Progress            = "progress"
	Exit                = "exit"

	CheckpointUpload       = "checkpoint_upload"
	CheckpointUploadFailed = "checkpoint_upload_failed"
	CheckpointDownload     = "checkpoint_download"

	InterruptSent = "interrupt_sent"
	ChildExit     = "child_exit"
	Restart       = "restart"
	ChildStart    = "child_start"
	RunnerStart   = "runner_start"
)

// required lists the fields each known type must have.
var required = map[string][]string{
	RunStart:               {"config_hash", "device", "pid", "libtorch"},
	Resume:                 {"step", "epoch", "batch", "dir"},
	CheckpointBegin:        {"step", "reason"},
	CheckpointCommit:       {"step", "reason", "blocking_ms", "persist_ms", "bytes", "dir"},
	CheckpointFailed:       {"error"},
	CheckpointInvalid:      {"dir", "reason"},
	SignalReceived:         {"signal"},
	EmergencyCheckpoint:    {"step"},
	EpochEnd:               {"epoch", "step", "train_loss", "metrics"},
	Progress:               {"step", "epoch", "loss"},
	Exit:                   {"code", "reason", "step"},
	CheckpointUpload:       {"step", "bytes", "upload_ms"},
	CheckpointUploadFailed: {"step", "error"},
	CheckpointDownload:     {"step", "url", "bytes", "download_ms"},
	InterruptSent:          {"kind", "reason", "pid"},
	ChildExit:              {"pid", "code", "signal", "caused"},
	Restart:                {"attempt", "delay_s"},
	ChildStart:             {"attempt", "pid"},
}

// syncedTypes are the types fsynced before Emit returns.
var syncedTypes = map[string]bool{CheckpointCommit: true, EmergencyCheckpoint: true, Exit: true, ChildExit: true}

// file is what Log needs of an *os.File (a seam for tests).
type file interface {
	Fd() uintptr
	io.ReadWriteSeeker
	io.ReaderAt
	Stat() (fs.FileInfo, error)
	Sync() error
	Truncate(size int64) error
	Close() error
}

// Log is an open event log. It is safe for concurrent use.
type Log struct {
	path        string
	incarnation int
	runner      bool // opened by OpenRunner

	mu     sync.Mutex
	f      file
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
		if err := durable.SyncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	var whole []byte
	err := withFlock(f, func() (err error) {
		whole, err = repair(f)
		return err
	})
	if err != nil {
		return nil, err
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
	return &Log{path: path, incarnation: last + 1, f: f}, nil
}

// OpenRunner opens, or creates, runDir/events.jsonl for the runner that supervises the run's
// trainer processes (spottrain run): its events have incarnation 0. It may write while a trainer
// writes: each event is one append of a whole line. Before each of its events it repairs a torn
// last line that a killed trainer left, as Open does.
func OpenRunner(runDir string) (*Log, error) {
	path := filepath.Join(runDir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	if err := durable.SyncDir(runDir); err != nil {
		f.Close()
		return nil, fmt.Errorf("open event log %s: %w", path, err)
	}
	return &Log{path: path, incarnation: 0, f: f, runner: true}, nil
}

// withFlock runs fn holding an exclusive flock on f. Every writer of the log appends and repairs
// under it, so a torn last line seen under the lock is really torn: its writer died (the kernel
// releases the lock of a dead process), it is not still writing.
func withFlock(f file, fn func() error) error {
	fd := int(f.Fd())
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX)
		if err == nil {
			break
		}
		if err != syscall.EINTR {
			return fmt.Errorf("lock: %w", err)
		}
	}
	defer syscall.Flock(fd, syscall.LOCK_UN)
	return fn()
}

// repair reads f and ends it with a whole line: a torn last line (no newline: a crash in the
// middle of a write) is cut off, or ended with a newline if it is a whole event. It returns the
// whole lines.
func repair(f file) ([]byte, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	whole := data[:bytes.LastIndexByte(data, '\n')+1]
	tail := data[len(whole):]
	if len(tail) == 0 {
		return whole, nil
	}
	if _, err := parse(tail); err == nil {
		// A whole event that lost only its newline: keep it.
		if _, err := f.Write([]byte{'\n'}); err != nil {
			return nil, err
		}
		whole = append(data, '\n')
	} else if err := f.Truncate(int64(len(whole))); err != nil {
		return nil, err
	}
	return whole, f.Sync()
}

// Incarnation is the incarnation of this process, written in every event it emits.
func (l *Log) Incarnation() int { return l.incarnation }

// Emit appends an event of type typ with fields (the keys time, type and incarnation are
// reserved) as one line, and fsyncs the log for checkpoint_commit, emergency_checkpoint, exit and
// child_exit.
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
	err = withFlock(l.f, func() error {
		if l.runner {
			if _, err := repair(l.f); err != nil {
				return fmt.Errorf("repair the last line: %w", err)
			}
		}
		n, err := l.f.Write(line)
		if err != nil {
			if terr := cutOff(l.f, line[:n]); terr != nil {
				err = errors.Join(err, fmt.Errorf("cut off the partial line: %w", terr))
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("emit %s event to %s: %w", typ, l.path, err)
	}
	if syncedTypes[typ] {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("emit %s event to %s: %w", typ, l.path, err)
		}
	}
	return nil
}

// cutOff removes partial, the start of a line that a failed write appended, from the end of f. It
// runs under the flock, so no other writer appended since; it still checks the bytes first and
// leaves f alone if they are not at the end.
func cutOff(f file, partial []byte) error {
	if len(partial) == 0 {
		return nil
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	at := st.Size() - int64(len(partial))
	if at < 0 {
		return nil
	}
	tail := make([]byte, len(partial))
	if _, err := f.ReadAt(tail, at); err != nil {
		return err
	}
	if !bytes.Equal(tail, partial) {
		return nil
	}
	return f.Truncate(at)
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
	if !ok || inc < 0 || inc > math.MaxInt32 || inc != math.Trunc(inc) {
		return Event{}, errors.New("no incarnation")
	}
	delete(fields, "time")
	delete(fields, "type")
	delete(fields, "incarnation")
	return Event{Time: t.UTC(), Type: typ, Incarnation: int(inc), Fields: fields}, nil
}
