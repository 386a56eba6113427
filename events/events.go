// Package events is the append-only event log of a run: events.jsonl in the run directory, one
// JSON object per line, for the analysis of what a run did across its incarnations (the
// processes that ran it, each killed or preempted in turn).
//
// Every event has these fields first, then its own ones in alphabetical order:
//
//	time         string  RFC 3339 with nanoseconds, UTC
//	type         string  one of the types below, or another
//	incarnation  int     1 for the first trainer process that wrote the log, +1 for each later
//	                     one; 0 for the runner that supervises them (spottrain run, OpenRunner)
//
// Each type has its payload struct, whose json tags name its fields and which documents them
// (payloads.go): a process writes an event with Emit(RunStart{...}), and Read returns it with its
// Payload decoded (switch p := e.Payload.(type) { case RunStart: ... }). Emit always writes the
// required fields of a type, and Read refuses a line of a known type that lacks one (an error
// naming the line), so a reader never takes a missing field for a zero. More fields are allowed
// in a line read, and other types are too: Read leaves their fields to Event.Decode. The types
// and their required fields:
//
//	run_start             RunStart: config_hash, device, pid, libtorch; also training_hash, total_steps
//	resume                Resume: step, epoch, batch (the next batch to run), dir (the checkpoint)
//	regroup               Regroup: generation, from_world, to_world, at_step, step, epoch, batch,
//	                      dir, took_ms; also lost, joined: an elastic group went on at another
//	                      size from the checkpoint in dir, within the incarnation
//	checkpoint_begin      CheckpointBegin: step, reason (codes.CheckpointReason)
//	checkpoint_commit     CheckpointCommit: step, reason, blocking_ms, persist_ms, bytes, dir
//	checkpoint_failed     CheckpointFailed: error (a checkpoint could not be saved; training went on)
//	checkpoint_invalid    CheckpointInvalid: dir, reason (why it was skipped)
//	signal_received       SignalReceived: signal; also step, wait_ms
//	emergency_checkpoint  EmergencyCheckpoint: step; also the other fields of checkpoint_commit
//	epoch_end             EpochEnd: epoch, step, train_loss, metrics (object of floats)
//	progress              Progress: step, epoch, loss: a log line's worth of training
//	group_stats           GroupStats: world, backend, steps, bytes, reduce_ms, bare_ms:
//	                      what a group's gradient sums cost (rank 0, after its training)
//	exit                  Exit: code (the exit status, codes.ExitDone...), reason, step; also
//	                      signal, signal_to_exit_ms after a notice; peer_lost, lost_ranks when a
//	                      group lost a peer
//	checkpoint_upload     CheckpointUpload: step, bytes (0 if the remote had it), upload_ms; also
//	                      pruned, superseded (lists of steps), warning
//	checkpoint_upload_failed  CheckpointUploadFailed: step, error: the remote keeps what it had
//	checkpoint_download   CheckpointDownload: step, url, bytes, download_ms: a run dir without a
//	                      newer checkpoint took the remote's newest valid one
//
// The runner's types (incarnation 0):
//
//	runner_start          RunnerStart: name, index, pattern, seed, time_scale, no_notice_share,
//	                      pid, machines (none required)
//	interrupt_sent        InterruptSent: kind (codes.InterruptKind), reason
//	                      (codes.InterruptReason), pid; also at_spot_s on schedule, machine
//	                      (the simulated machine it hit; pid is then its worker's, when found)
//	signal_failed         SignalFailed: pid, signal, error
//	child_exit            ChildExit: pid, code (-1 when killed by a signal), signal ("" if none),
//	                      caused (the runner signalled this child)
//	restart               Restart: attempt (1 for the first restart), delay_s (spot time without
//	                      a VM; the runner waits it out, scaled, before the next start)
//	child_start           ChildStart: attempt (0 for the first start), pid: a trainer process began
//
// A non-finite float (a diverged loss) is written as the string "NaN", "+Inf" or "-Inf", since
// JSON has no such numbers, and read back as that float; that applies to float64 and float32
// fields and to the values of a map of floats.
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
	"reflect"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"spottrain/internal/durable"
)

// FileName is the name of the log in the run directory.
const FileName = "events.jsonl"

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

// Emit appends an event with payload p (see Payload) as one line, and fsyncs the log for
// checkpoint_commit, emergency_checkpoint, exit and child_exit. A payload of a known type must be
// that type's struct (a RunStart for run_start, ...), so every required field is written. If the
// write fails, what it wrote is cut off (best effort), so the log stays whole lines.
func (l *Log) Emit(p Payload) error {
	typ := p.EventType()
	line, err := Encode(time.Now(), l.incarnation, p)
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

// Encode is the line, newline included, of the event with payload p at time t by incarnation, as
// Emit writes it: Read reads it back as that event. It refuses what Emit refuses.
func Encode(t time.Time, incarnation int, p Payload) ([]byte, error) {
	typ := p.EventType()
	if typ == "" {
		return nil, errors.New("empty event type")
	}
	if want, ok := known[typ]; ok && reflect.TypeOf(p) != want {
		return nil, fmt.Errorf("payload %T is not a %s", p, want)
	}
	fields, err := fieldsOf(p)
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"time", "type", "incarnation"} {
		if _, ok := fields[k]; ok {
			return nil, fmt.Errorf("field %q is reserved", k)
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
	// Payload is the event's fields as the payload struct of its type (a RunStart, an Exit, ...)
	// for the types of this package; nil for another type, whose fields Decode reads.
	Payload Payload
	fields  map[string]json.RawMessage
}

// Decode reads the event's fields into p, a pointer to a struct whose fields are tagged as a
// Payload's (a payload of another type, or a few fields of any event), as Read does for the types
// of this package: a required field that the event lacks is an error; a float written as
// "NaN", "+Inf" or "-Inf" is read as that number; fields that p does not name are ignored.
func (e Event) Decode(p any) error {
	if err := decodeInto(e.fields, p); err != nil {
		return fmt.Errorf("%s event: %w", e.Type, err)
	}
	return nil
}

// Read reads a log. A last line without newline (a crash, or a write in progress) is read if it
// is a whole event and ignored if not; any other line that is not an event is an error naming its
// line number. A line of a type of this package must have the required fields of its payload.
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

// parse reads one line: the time, type and incarnation every event has, and the payload of a
// known type.
func parse(line []byte) (Event, error) {
	var head struct {
		Time        *time.Time `json:"time"`
		Type        string     `json:"type"`
		Incarnation *float64   `json:"incarnation"`
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return Event{}, err
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return Event{}, err
	}
	switch inc := head.Incarnation; {
	case head.Time == nil:
		return Event{}, errors.New("no time")
	case head.Type == "":
		return Event{}, errors.New("no type")
	case inc == nil || *inc < 0 || *inc > math.MaxInt32 || *inc != math.Trunc(*inc):
		return Event{}, errors.New("no incarnation")
	}
	delete(fields, "time")
	delete(fields, "type")
	delete(fields, "incarnation")
	e := Event{Time: head.Time.UTC(), Type: head.Type, Incarnation: int(*head.Incarnation), fields: fields}
	if t, ok := known[e.Type]; ok {
		p := reflect.New(t)
		if err := e.Decode(p.Interface()); err != nil {
			return Event{}, err
		}
		e.Payload = p.Elem().Interface().(Payload)
	}
	return e, nil
}
