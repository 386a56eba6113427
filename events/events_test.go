package events_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/events"
	"spottrain/events/eventstest"
)

func openLog(t *testing.T, dir string) *events.Log {
	t.Helper()
	l, err := events.Open(dir)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func openRunner(t *testing.T, dir string) *events.Log {
	t.Helper()
	l, err := events.OpenRunner(dir)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

// writers are the two kinds of Log on one events.jsonl.
var writers = []struct {
	name string
	open func(*testing.T, string) *events.Log
}{{"trainer", openLog}, {"runner", openRunner}}

func runStart() events.RunStart {
	return events.RunStart{ConfigHash: "9f86d081", Device: "cpu", PID: 4242, Libtorch: "1.13.1"}
}

// note is a payload of a type this package does not know.
type note struct {
	Text  string  `json:"text"`
	Count int     `json:"count,omitempty"`
	Grad  float32 `json:"grad" events:"optional"`
	Skip  string  `json:"-"`
}

func (note) EventType() string { return "note" }

func TestIncarnations(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	assert.Equal(t, 1, l.Incarnation())
	require.NoError(t, l.Emit(runStart()))
	require.NoError(t, l.Close())

	l = openLog(t, dir)
	assert.Equal(t, 2, l.Incarnation())
	require.NoError(t, l.Emit(runStart()))
	require.NoError(t, l.Emit(events.Resume{Step: 100, Epoch: 2, Batch: 5, Dir: "runs/x/step-00000100"}))
	require.NoError(t, l.Close())

	// A process that crashed before emitting anything leaves no trace: its number is reused.
	require.NoError(t, openLog(t, dir).Close())
	assert.Equal(t, 3, openLog(t, dir).Incarnation())

	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, 3)
	for i, want := range []struct {
		typ         string
		incarnation int
	}{{"run_start", 1}, {"run_start", 2}, {"resume", 2}} {
		assert.Equal(t, want.typ, evs[i].Type, i)
		assert.Equal(t, want.incarnation, evs[i].Incarnation, i)
	}
	assert.Equal(t, runStart(), evs[0].Payload)
	assert.Equal(t, events.Resume{Step: 100, Epoch: 2, Batch: 5, Dir: "runs/x/step-00000100"}, evs[2].Payload)
}

func TestLineFormat(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	before := time.Now().UTC()
	require.NoError(t, l.Emit(events.EpochEnd{TrainLoss: 0.5, Step: 300, Epoch: 1, Metrics: map[string]float64{"val_loss": 0.25, "mae": 0.1}}))
	require.NoError(t, l.Emit(events.CheckpointFailed{Error: "a\nb <&>"}))
	after := time.Now().UTC()

	data, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	lines := strings.SplitAfter(string(data), "\n")
	require.Len(t, lines, 3, "two lines")
	assert.Empty(t, lines[2])
	for i, want := range []struct{ typ, fields string }{
		{"epoch_end", `"epoch":1,"metrics":{"mae":0.1,"val_loss":0.25},"step":300,"train_loss":0.5}` + "\n"},
		{"checkpoint_failed", `"error":"a\nb \u003c\u0026\u003e"}` + "\n"},
	} {
		prefix, rest, ok := strings.Cut(lines[i], `","type":"`+want.typ+`","incarnation":1,`)
		require.True(t, ok, lines[i])
		ts, ok := strings.CutPrefix(prefix, `{"time":"`)
		require.True(t, ok, lines[i])
		assert.Equal(t, want.fields, rest)
		tm, err := time.Parse(time.RFC3339Nano, ts)
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(ts, "Z"), ts)
		assert.False(t, tm.Before(before.Truncate(0)) || tm.After(after), "%s not in [%s, %s]", tm, before, after)
	}

	evs := eventstest.Read(t, dir)
	require.Len(t, evs, 2)
	assert.Equal(t, events.CheckpointFailed{Error: "a\nb <&>"}, evs[1].Payload)
	assert.Equal(t, "checkpoint_failed", evs[1].Type)
}

// TestOptionalFields: a field tagged omitempty is written only when set, one tagged
// events:"optional" always; a line of an older log without them reads with zero values.
func TestOptionalFields(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	ms := int64(0)
	require.NoError(t, l.Emit(events.Exit{Code: codes.ExitPreempted, Reason: "preempted", Step: 7, Signal: "terminated", SignalToExitMS: &ms}))
	require.NoError(t, l.Emit(events.Exit{Code: 0, Reason: "done", Step: 9}))
	require.NoError(t, l.Emit(events.RunnerStart{}))
	data, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	assert.True(t, strings.HasSuffix(lines[0], `"code":75,"reason":"preempted","signal":"terminated","signal_to_exit_ms":0,"step":7}`), lines[0])
	assert.True(t, strings.HasSuffix(lines[1], `"code":0,"reason":"done","step":9}`), lines[1])
	assert.True(t, strings.HasSuffix(lines[2], `"incarnation":1,"index":0,"name":"","no_notice_share":0,"pattern":"","pid":0,"seed":0,"time_scale":0}`), lines[2])

	path := filepath.Join(dir, events.FileName)
	appendRaw(t, path, `{"time":"2025-11-24T20:00:00Z","type":"runner_start","incarnation":0}`+"\n"+
		`{"time":"2025-11-24T20:00:01Z","type":"run_start","incarnation":1,"config_hash":"ab","device":"cpu","libtorch":"1.13.1","pid":1}`+"\n")
	evs := eventstest.Read(t, dir)
	require.Len(t, evs, 5)
	assert.Equal(t, events.Exit{Code: codes.ExitPreempted, Reason: "preempted", Step: 7, Signal: "terminated", SignalToExitMS: &ms}, evs[0].Payload)
	assert.Equal(t, events.Exit{Code: 0, Reason: "done", Step: 9}, evs[1].Payload)
	assert.Equal(t, events.RunnerStart{}, evs[3].Payload)
	assert.Equal(t, events.RunStart{ConfigHash: "ab", Device: "cpu", Libtorch: "1.13.1", PID: 1}, evs[4].Payload)
}

func TestNonFinite(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	require.NoError(t, l.Emit(events.EpochEnd{Epoch: 1, Step: 2, TrainLoss: math.NaN(),
		Metrics: map[string]float64{"val_loss": math.Inf(1), "mae": 0.5}}))
	require.NoError(t, l.Emit(note{Text: "x", Grad: float32(math.Inf(-1))}))
	data, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	assert.Contains(t, string(data), `"epoch":1,"metrics":{"mae":0.5,"val_loss":"+Inf"},"step":2,"train_loss":"NaN"}`)
	assert.Contains(t, string(data), `"grad":"-Inf","text":"x"}`)

	evs := eventstest.Read(t, dir)
	require.Len(t, evs, 2)
	ee, ok := evs[0].Payload.(events.EpochEnd)
	require.True(t, ok, "%T", evs[0].Payload)
	assert.True(t, math.IsNaN(ee.TrainLoss), "%v", ee.TrainLoss)
	assert.Equal(t, map[string]float64{"val_loss": math.Inf(1), "mae": 0.5}, ee.Metrics)
	var n note
	require.NoError(t, evs[1].Decode(&n))
	assert.Equal(t, note{Text: "x", Grad: float32(math.Inf(-1))}, n)
}

// Payloads that Emit refuses.
type (
	emptyType struct{}
	reserved  struct {
		Time string `json:"time"`
	}
	reservedInc struct {
		Inc int `json:"incarnation"`
	}
	unencodable struct {
		Ch chan int `json:"ch"`
	}
	fakeExit struct {
		Code int `json:"code"`
	}
	notStruct string
)

func (emptyType) EventType() string   { return "" }
func (reserved) EventType() string    { return "custom" }
func (reservedInc) EventType() string { return "custom" }
func (unencodable) EventType() string { return "custom" }
func (fakeExit) EventType() string    { return "exit" }
func (notStruct) EventType() string   { return "custom" }

func TestEmitRejects(t *testing.T) {
	cases := []struct {
		name string
		p    events.Payload
		msg  string
	}{
		{"EmptyType", emptyType{}, "emit  event: empty event type"},
		{"ReservedTime", reserved{}, `emit custom event: field "time" is reserved`},
		{"ReservedIncarnation", reservedInc{Inc: 3}, `emit custom event: field "incarnation" is reserved`},
		{"Unencodable", unencodable{Ch: make(chan int)}, `emit custom event: field "ch": json: unsupported type: chan int`},
		{"KnownTypeOtherStruct", fakeExit{Code: 1}, "emit exit event: payload events_test.fakeExit is not a events.Exit"},
		{"Pointer", &events.Exit{}, "emit exit event: payload *events.Exit is not a events.Exit"},
		{"NotStruct", notStruct("x"), "emit custom event: payload events_test.notStruct is not a struct"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			assert.EqualError(t, l.Emit(tc.p), tc.msg)
			data, err := os.ReadFile(filepath.Join(dir, events.FileName))
			require.NoError(t, err)
			assert.Empty(t, data)
		})
	}
}

func TestUnknownTypeAllowed(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, openLog(t, dir).Emit(note{Text: "hi", Count: 2, Skip: "not written"}))
	appendRaw(t, filepath.Join(dir, events.FileName), `{"time":"2025-11-24T20:00:00Z","type":"eval","incarnation":1}`+"\n")
	evs := eventstest.Read(t, dir)
	require.Len(t, evs, 2)
	assert.Equal(t, "note", evs[0].Type)
	assert.Nil(t, evs[0].Payload)
	var n note
	require.NoError(t, evs[0].Decode(&n))
	assert.Equal(t, note{Text: "hi", Count: 2}, n)
	assert.Equal(t, "eval", evs[1].Type)
	assert.Nil(t, evs[1].Payload)
	assert.EqualError(t, evs[1].Decode(&n), `eval event: missing field "text"`)
	assert.EqualError(t, evs[1].Decode(n), "eval event: decode into events_test.note: not a pointer to a payload")
}

// TestTornLastLine: a crash in the middle of a write leaves a last line without newline. Read
// ignores it; Open cuts it off (or ends it, if it is a whole event) so the log stays whole lines.
func TestTornLastLine(t *testing.T) {
	whole := `{"time":"2025-11-24T20:00:00Z","type":"run_start","incarnation":1,"config_hash":"ab","device":"cpu","libtorch":"1.13.1","pid":1}` + "\n"
	cases := []struct {
		name    string
		content string
		before  int // events Read sees before Open
	}{
		{"OnlyTorn", `{"time":"2025-11-`, 0},
		{"TornAfterEvents", whole + `{"time":"2025-11-24T20:00:01Z","type":"exi`, 1},
		{"TornJSONNotEvent", whole + `{"time":"x"}`, 1},
		{"WholeEventWithoutNewline", whole + strings.TrimSuffix(whole, "\n"), 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, events.FileName)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o644))
			evs, err := events.Read(path)
			require.NoError(t, err)
			assert.Len(t, evs, tc.before)

			l := openLog(t, dir)
			assert.Equal(t, 1+min(tc.before, 1), l.Incarnation())
			require.NoError(t, l.Emit(events.Exit{Code: 0, Reason: "done", Step: 9}))
			evs, err = events.Read(path)
			require.NoError(t, err, "every line is whole")
			require.Len(t, evs, tc.before+1)
			assert.IsType(t, events.Exit{}, evs[tc.before].Payload)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.before+1, bytes.Count(data, []byte("\n")))
		})
	}
}

func TestReadRejects(t *testing.T) {
	good := `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":1,"code":0,"reason":"done","step":9}`
	cases := []struct {
		name string
		line string
		msg  string
	}{
		{"Garbage", `garbage`, "invalid character"},
		{"Empty", ``, "unexpected end of JSON input"},
		{"NotObject", `[1]`, "cannot unmarshal array"},
		{"Null", `null`, "no time"},
		{"NoTime", `{"type":"exit","incarnation":1}`, "no time"},
		{"BadTime", `{"time":"noon","type":"exit","incarnation":1}`, "cannot parse"},
		{"NoType", `{"time":"2025-11-24T20:00:00Z","incarnation":1}`, "no type"},
		{"NoIncarnation", `{"time":"2025-11-24T20:00:00Z","type":"exit"}`, "no incarnation"},
		{"NegativeIncarnation", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":-1}`, "no incarnation"},
		{"FractionalIncarnation", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":1.5}`, "no incarnation"},
		// A known type must have its required fields, of the right types.
		{"MissingField", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":1,"code":0,"reason":"done"}`,
			`exit event: missing field "step"`},
		{"MissingFieldRunner", `{"time":"2025-11-24T20:00:00Z","type":"child_exit","incarnation":0,"pid":1,"code":0,"signal":""}`,
			`child_exit event: missing field "caused"`},
		{"WrongFieldType", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":1,"code":"0","reason":"done","step":9}`,
			`exit event: field "code": json: cannot unmarshal string`},
		{"FractionalStep", `{"time":"2025-11-24T20:00:00Z","type":"progress","incarnation":1,"step":1.5,"epoch":0,"loss":1}`,
			`progress event: field "step": json: cannot unmarshal number 1.5`},
		{"BadNonFinite", `{"time":"2025-11-24T20:00:00Z","type":"progress","incarnation":1,"step":1,"epoch":0,"loss":"Infinity"}`,
			`progress event: field "loss": json: cannot unmarshal string`},
		{"BadMetric", `{"time":"2025-11-24T20:00:00Z","type":"epoch_end","incarnation":1,"step":1,"epoch":0,"train_loss":1,"metrics":{"mae":true}}`,
			`epoch_end event: field "metrics": "mae": json: cannot unmarshal bool`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), events.FileName)
			require.NoError(t, os.WriteFile(path, []byte(good+"\n"+tc.line+"\n"+good+"\n"), 0o644))
			_, err := events.Read(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "read events "+path+": line 2: ")
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err := events.Read(filepath.Join(t.TempDir(), "absent.jsonl"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// recordingFile counts Sync calls and can fail them, or fail a write half-way with ENOSPC.
type recordingFile struct {
	events.File
	mu        sync.Mutex
	syncs     int
	failSync  bool
	failWrite bool
}

func (f *recordingFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.failSync {
		return &fs.PathError{Op: "sync", Path: "events.jsonl", Err: syscall.EIO}
	}
	return f.File.Sync()
}

func (f *recordingFile) Write(p []byte) (int, error) {
	if f.failWrite {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &fs.PathError{Op: "write", Path: "events.jsonl", Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func record(l *events.Log) *recordingFile {
	var rf *recordingFile
	events.WrapFile(l, func(f events.File) events.File {
		rf = &recordingFile{File: f}
		return rf
	})
	return rf
}

// TestDurableTypes: checkpoint_commit, emergency_checkpoint, exit and child_exit are fsynced; the
// others not, whichever writer (trainer or runner) emits them.
func TestDurableTypes(t *testing.T) {
	cases := []struct {
		p      events.Payload
		synced bool
	}{
		{runStart(), false},
		{events.Resume{Step: 1, Epoch: 0, Batch: 1, Dir: "d"}, false},
		{events.CheckpointBegin{Step: 1, Reason: codes.Periodic}, false},
		{events.CheckpointCommit{Step: 1, Reason: codes.Periodic, BlockingMS: 1.5, PersistMS: 20.0, Bytes: 1024, Dir: "d"}, true},
		{events.CheckpointFailed{Error: "no space left on device"}, false},
		{events.CheckpointInvalid{Dir: "d", Reason: "model.pt: sha256 mismatch"}, false},
		{events.SignalReceived{Signal: "terminated"}, false},
		{events.EmergencyCheckpoint{Step: 1}, true},
		{events.EpochEnd{Epoch: 0, Step: 1, TrainLoss: 0.5, Metrics: map[string]float64{}}, false},
		{events.Exit{Code: codes.ExitPreempted, Reason: "preempted", Step: 1}, true},
		{events.Progress{Step: 50, Epoch: 0, Loss: 1.25}, false},
		{events.InterruptSent{Kind: codes.Notice, Reason: codes.Schedule, PID: 4242}, false},
		{events.ChildExit{PID: 4242, Code: codes.ExitPreempted, Signal: "", Caused: true}, true},
		{events.Restart{Attempt: 1, DelayS: 120.0}, false},
		{events.ChildStart{Attempt: 1, PID: 4242}, false},
		{events.RunnerStart{Name: "x"}, false},
		{events.SignalFailed{PID: 4242, Signal: "killed", Error: "operation not permitted"}, false},
		{events.CheckpointUpload{Step: 1, Bytes: 1024, UploadMS: 3.5}, false},
		{events.CheckpointUploadFailed{Step: 1, Error: "timeout"}, false},
		{events.CheckpointDownload{Step: 1, URL: "gs://b/r", Bytes: 1024, DownloadMS: 7}, false},
		{note{Text: "other types are not synced"}, false},
	}
	for _, tc := range cases {
		for _, w := range writers {
			t.Run(tc.p.EventType()+"/"+w.name, func(t *testing.T) {
				l := w.open(t, t.TempDir())
				rf := record(l)
				require.NoError(t, l.Emit(tc.p))
				want := 0
				if tc.synced {
					want = 1
				}
				assert.Equal(t, want, rf.syncs)
			})
		}
	}
}

func TestSyncError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	rf := record(l)
	rf.failSync = true
	err := l.Emit(events.Exit{Code: 1, Reason: "error", Step: 3})
	require.ErrorIs(t, err, syscall.EIO)
	assert.Contains(t, err.Error(), "emit exit event to "+filepath.Join(dir, events.FileName)+": ")
}

// TestFailedWriteCutOff: a write that fails half-way is cut off, so later events stay readable.
func TestFailedWriteCutOff(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	rf := record(l)
	require.NoError(t, l.Emit(events.SignalReceived{Signal: "terminated"}))
	before, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	rf.failWrite = true
	err = l.Emit(events.EmergencyCheckpoint{Step: 7})
	require.ErrorIs(t, err, syscall.ENOSPC)
	rf.failWrite = false
	after, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "exactly the partial line is cut off")
	require.NoError(t, l.Emit(events.Exit{Code: codes.ExitPreempted, Reason: "preempted", Step: 7}))

	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.IsType(t, events.SignalReceived{}, evs[0].Payload)
	assert.IsType(t, events.Exit{}, evs[1].Payload)
}

// tick is a payload of a type this package does not know, for the concurrency tests.
type tick struct {
	G   int    `json:"g"`
	I   int    `json:"i"`
	Pad string `json:"pad"`
}

func (tick) EventType() string { return "tick" }

// TestConcurrentEmit: events emitted from many goroutines are whole lines, none lost.
func TestConcurrentEmit(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	const goroutines, each = 8, 100
	pad := strings.Repeat("x", 5000) // lines longer than a pipe buffer or a page
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				assert.NoError(t, l.Emit(tick{G: g, I: i, Pad: pad}))
			}
		})
	}
	wg.Wait()

	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, goroutines*each)
	seen := map[string]bool{}
	for _, ev := range evs {
		var tk tick
		require.NoError(t, ev.Decode(&tk))
		require.Equal(t, pad, tk.Pad)
		key := fmt.Sprint(tk.G, "/", tk.I)
		require.False(t, seen[key], key)
		seen[key] = true
	}
}

func TestClose(t *testing.T) {
	dir := t.TempDir()
	l, err := events.Open(dir)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "twice")
	assert.EqualError(t, l.Emit(events.SignalReceived{Signal: "interrupt"}),
		"emit signal_received event: log "+filepath.Join(dir, events.FileName)+" is closed")

	_, err = events.Open(filepath.Join(dir, "absent"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// appendRaw appends s to path through a file of its own, as another process would.
func appendRaw(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// typeIncarnation is what the interleaving tests compare of an event.
type typeIncarnation struct {
	typ         string
	incarnation int
}

func typesAndIncarnations(evs []events.Event) []typeIncarnation {
	out := make([]typeIncarnation, len(evs))
	for i, ev := range evs {
		out[i] = typeIncarnation{ev.Type, ev.Incarnation}
	}
	return out
}

func childExit(code int) events.ChildExit {
	return events.ChildExit{PID: 4242, Code: code, Signal: "", Caused: true}
}

func TestOpenRunner(t *testing.T) {
	dir := t.TempDir()
	l, err := events.OpenRunner(dir)
	require.NoError(t, err)
	assert.Equal(t, 0, l.Incarnation())
	data, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err, "created")
	assert.Empty(t, data)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "twice")
	assert.EqualError(t, l.Emit(events.Restart{Attempt: 1, DelayS: 0.0}),
		"emit restart event: log "+filepath.Join(dir, events.FileName)+" is closed")

	_, err = events.OpenRunner(filepath.Join(dir, "absent"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// TestTrainerAndRunnerInterleave: a trainer and the runner write one log; Read sees every event in
// the order written, the trainer's with incarnations 1, 2, ... and the runner's with 0.
func TestTrainerAndRunnerInterleave(t *testing.T) {
	dir := t.TempDir()
	runner := openRunner(t, dir)
	require.Equal(t, 0, runner.Incarnation())

	trainer := openLog(t, dir)
	require.Equal(t, 1, trainer.Incarnation())
	require.NoError(t, trainer.Emit(runStart()))
	require.NoError(t, trainer.Emit(events.Progress{Step: 50, Epoch: 0, Loss: 2.5}))
	require.NoError(t, runner.Emit(events.InterruptSent{Kind: codes.Notice, Reason: codes.Schedule, PID: 4242}))
	require.NoError(t, trainer.Emit(events.SignalReceived{Signal: "terminated"}))
	require.NoError(t, trainer.Emit(events.EmergencyCheckpoint{Step: 64}))
	require.NoError(t, trainer.Emit(events.Exit{Code: codes.ExitPreempted, Reason: "preempted", Step: 64}))
	require.NoError(t, trainer.Close())
	require.NoError(t, runner.Emit(childExit(codes.ExitPreempted)))
	require.NoError(t, runner.Emit(events.Restart{Attempt: 1, DelayS: 120.0}))

	trainer = openLog(t, dir)
	require.Equal(t, 2, trainer.Incarnation(), "the runner's lines do not count")
	require.NoError(t, trainer.Emit(runStart()))
	require.NoError(t, runner.Emit(events.InterruptSent{Kind: codes.Kill, Reason: codes.Schedule, PID: 4343}))
	require.NoError(t, runner.Emit(events.ChildExit{PID: 4343, Code: -1, Signal: "killed", Caused: true}))

	evs := eventstest.Read(t, dir)
	assert.Equal(t, []typeIncarnation{
		{"run_start", 1},
		{"progress", 1},
		{"interrupt_sent", 0},
		{"signal_received", 1},
		{"emergency_checkpoint", 1},
		{"exit", 1},
		{"child_exit", 0},
		{"restart", 0},
		{"run_start", 2},
		{"interrupt_sent", 0},
		{"child_exit", 0},
	}, typesAndIncarnations(evs))
	assert.Equal(t, childExit(codes.ExitPreempted), evs[6].Payload)
	assert.Equal(t, events.Restart{Attempt: 1, DelayS: 120}, evs[7].Payload)
	for i := 1; i < len(evs); i++ {
		assert.False(t, evs[i].Time.Before(evs[i-1].Time), "event %d is earlier than event %d", i, i-1)
	}
}

// TestOpenIncarnationIgnoresRunner: the runner's incarnation-0 lines never move the trainer's
// incarnation: it is one more than the largest trainer incarnation, or 1.
func TestOpenIncarnationIgnoresRunner(t *testing.T) {
	restart := events.Restart{Attempt: 1, DelayS: 0}
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  int
	}{
		{"RunnerCreatedEmptyLog", func(t *testing.T, dir string) {
			require.NoError(t, openRunner(t, dir).Close())
		}, 1},
		{"OnlyRunnerLines", func(t *testing.T, dir string) {
			r := openRunner(t, dir)
			require.NoError(t, r.Emit(childExit(codes.ExitPreempted)))
			require.NoError(t, r.Emit(restart))
		}, 1},
		{"RunnerLinesAfterOneTrainer", func(t *testing.T, dir string) {
			r := openRunner(t, dir)
			require.NoError(t, openLog(t, dir).Emit(runStart()))
			require.NoError(t, r.Emit(childExit(codes.ExitPreempted)))
			require.NoError(t, r.Emit(restart))
		}, 2},
		{"RunnerLinesAroundTwoTrainers", func(t *testing.T, dir string) {
			r := openRunner(t, dir)
			require.NoError(t, r.Emit(events.InterruptSent{Kind: codes.Notice, Reason: codes.Cancel, PID: 1}))
			require.NoError(t, openLog(t, dir).Emit(runStart()))
			require.NoError(t, r.Emit(restart))
			require.NoError(t, openLog(t, dir).Emit(runStart()))
			require.NoError(t, r.Emit(restart))
		}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			l := openLog(t, dir)
			assert.Equal(t, tc.want, l.Incarnation())
			require.NoError(t, l.Emit(runStart()))
			evs := eventstest.Read(t, dir)
			assert.Equal(t, typeIncarnation{"run_start", tc.want}, typesAndIncarnations(evs)[len(evs)-1])
		})
	}
}

func TestReadIncarnationZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), events.FileName)
	require.NoError(t, os.WriteFile(path, []byte(
		`{"time":"2025-11-24T20:00:00Z","type":"restart","incarnation":0,"attempt":1,"delay_s":0}`+"\n"+
			`{"time":"2025-11-24T20:00:01Z","type":"run_start","incarnation":1,"config_hash":"ab","device":"cpu","libtorch":"1.13.1","pid":1}`+"\n"+
			`{"time":"2025-11-24T20:00:02Z","type":"child_exit","incarnation":0,"pid":1,"code":0,"signal":"","caused":false}`), 0o644))
	evs, err := events.Read(path)
	require.NoError(t, err)
	assert.Equal(t, []typeIncarnation{{"restart", 0}, {"run_start", 1}, {"child_exit", 0}}, typesAndIncarnations(evs))
	assert.Equal(t, events.ChildExit{PID: 1, Code: 0, Signal: "", Caused: false}, evs[2].Payload)
}

// TestRunnerRepairsTornLine: a trainer killed in the middle of a write leaves a torn last line;
// the runner's next Emit (not only its first) cuts it off, or ends it with a newline if it is a
// whole event, so its own line starts on a line of its own and the log reads whole.
func TestRunnerRepairsTornLine(t *testing.T) {
	exitLine := `{"time":"2025-11-24T20:00:01Z","type":"exit","incarnation":1,"code":75,"reason":"preempted","step":64}`
	cases := []struct {
		name string
		tail string
		kept bool // the tail is a whole event that lost only its newline
	}{
		{"TornEvent", `{"time":"2025-11-24T20:00:01Z","type":"checkpoint_comm`, false},
		{"TornJSONNotEvent", `{"time":"x"}`, false},
		{"OneByte", `{`, false},
		{"WholeEventWithoutNewline", exitLine, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, events.FileName)
			runner := openRunner(t, dir)
			trainer := openLog(t, dir)
			require.NoError(t, trainer.Emit(runStart()))
			require.NoError(t, runner.Emit(events.InterruptSent{Kind: codes.Notice, Reason: codes.Schedule, PID: 4242}))
			// The trainer dies in the middle of its next write.
			appendRaw(t, path, tc.tail)
			before, err := os.ReadFile(path)
			require.NoError(t, err)

			require.NoError(t, runner.Emit(childExit(-1)))

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			whole := string(before[:len(before)-len(tc.tail)])
			require.True(t, strings.HasPrefix(string(data), whole), "the lines before the tail are untouched")
			rest := strings.TrimPrefix(string(data), whole)
			want := []typeIncarnation{{"run_start", 1}, {"interrupt_sent", 0}}
			if tc.kept {
				var ok bool
				rest, ok = strings.CutPrefix(rest, tc.tail+"\n")
				require.True(t, ok, "the whole event is kept and ended: %q", rest)
				want = append(want, typeIncarnation{"exit", 1})
			}
			// What follows is the runner's line alone: the torn line is gone.
			assert.True(t, strings.HasPrefix(rest, `{"time":"`) && strings.HasSuffix(rest, "}\n") &&
				strings.Count(rest, "\n") == 1 && strings.Contains(rest, `,"type":"child_exit","incarnation":0,`), "%q", rest)
			want = append(want, typeIncarnation{"child_exit", 0})
			assert.Equal(t, len(want), strings.Count(string(data), "\n"), "whole lines only")
			assert.Equal(t, want, typesAndIncarnations(eventstest.Read(t, dir)))

			// The next trainer counts the one before it, not the runner.
			next := openLog(t, dir)
			assert.Equal(t, 2, next.Incarnation())
			require.NoError(t, next.Emit(runStart()))
			assert.Len(t, eventstest.Read(t, dir), len(want)+1)
		})
	}
}

// interleavingFile fails a write half-way with ENOSPC like recordingFile, but runs during (another
// writer appending) after the half is written and before the error returns.
type interleavingFile struct {
	events.File
	fail    bool
	during  func()
	partial []byte // what the failed write wrote
}

func (f *interleavingFile) Write(p []byte) (int, error) {
	if !f.fail {
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:len(p)/2])
	f.partial = bytes.Clone(p[:n])
	f.during()
	return n, &fs.PathError{Op: "write", Path: "events.jsonl", Err: syscall.ENOSPC}
}

// TestFailedWriteCutOffKeepsOtherWriter: when the other writer appended after a failed write's
// partial line, Emit's cut-off leaves the file alone rather than cut the other writer's line.
func TestFailedWriteCutOffKeepsOtherWriter(t *testing.T) {
	setup := func(t *testing.T) (dir, path string, trainer *events.Log, f *interleavingFile) {
		dir = t.TempDir()
		path = filepath.Join(dir, events.FileName)
		trainer = openLog(t, dir)
		require.NoError(t, trainer.Emit(events.SignalReceived{Signal: "terminated"}))
		events.WrapFile(trainer, func(inner events.File) events.File {
			f = &interleavingFile{File: inner}
			return f
		})
		return dir, path, trainer, f
	}

	// A bare append of a whole line, with no repair: the partial line is no longer at the end, so
	// nothing is cut; the partial and the other line now make one corrupt line, which is what the
	// runner's repair before each of its writes prevents (see RunnerEmit).
	t.Run("RawAppend", func(t *testing.T) {
		_, path, trainer, f := setup(t)
		before, err := os.ReadFile(path)
		require.NoError(t, err)
		other := `{"time":"2025-11-24T20:00:02Z","type":"interrupt_sent","incarnation":0,"kind":"kill","pid":4242,"reason":"grace"}` + "\n"
		f.fail = true
		f.during = func() { appendRaw(t, path, other) }
		err = trainer.Emit(events.EmergencyCheckpoint{Step: 7})
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.NotEmpty(t, f.partial)

		data, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.True(t, strings.HasSuffix(string(data), other), "the other writer's line is not cut: %q", data)
		assert.Equal(t, string(before)+string(f.partial)+other, string(data))
	})

	// The runner's Emit waits for the flock the trainer holds through its write and cut-off, so
	// it never sees the trainer's partial line: it appends after the cut-off.
	t.Run("RunnerEmit", func(t *testing.T) {
		dir, _, trainer, f := setup(t)
		runner := openRunner(t, dir)
		f.fail = true
		emitted := make(chan error, 1)
		f.during = func() {
			go func() {
				emitted <- runner.Emit(events.InterruptSent{Kind: codes.Kill, Reason: codes.Grace, PID: 4242})
			}()
		}
		err := trainer.Emit(events.EmergencyCheckpoint{Step: 7})
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.NotEmpty(t, f.partial)
		require.NoError(t, <-emitted)
		f.fail = false
		assert.Equal(t, []typeIncarnation{{"signal_received", 1}, {"interrupt_sent", 0}}, typesAndIncarnations(eventstest.Read(t, dir)))

		require.NoError(t, trainer.Emit(events.Exit{Code: 1, Reason: "error", Step: 7}))
		assert.Equal(t, []typeIncarnation{{"signal_received", 1}, {"interrupt_sent", 0}, {"exit", 1}},
			typesAndIncarnations(eventstest.Read(t, dir)))
	})
}

// TestConcurrentWriters: a trainer and a runner emitting at the same time lose no event, and the
// runner's repair never cuts a line the trainer is still writing.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	trainer := openLog(t, dir)
	runner := openRunner(t, dir)
	pad := strings.Repeat("x", 4000) // long lines: a reader could see one half written
	const n = 200
	var wg sync.WaitGroup
	for _, l := range []*events.Log{trainer, runner} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				assert.NoError(t, l.Emit(tick{I: i, Pad: pad}))
			}
		}()
	}
	wg.Wait()
	evs := eventstest.Read(t, dir)
	require.Equal(t, 2*n, len(evs), "events lost")
	next := map[int]int{}
	for _, e := range evs {
		var tk tick
		require.NoError(t, e.Decode(&tk))
		assert.Equal(t, next[e.Incarnation], tk.I, "incarnation %d", e.Incarnation)
		next[e.Incarnation]++
	}
	assert.Equal(t, map[int]int{0: n, 1: n}, next)
}
