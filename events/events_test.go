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

	"spottrain/events"
)

func openLog(t *testing.T, dir string) *events.Log {
	t.Helper()
	l, err := events.Open(dir)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func runStart() map[string]any {
	return map[string]any{"config_hash": "9f86d081", "device": "cpu", "pid": 4242, "libtorch": "1.13.1"}
}

func TestIncarnations(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	assert.Equal(t, 1, l.Incarnation())
	require.NoError(t, l.Emit(events.RunStart, runStart()))
	require.NoError(t, l.Close())

	l = openLog(t, dir)
	assert.Equal(t, 2, l.Incarnation())
	require.NoError(t, l.Emit(events.RunStart, runStart()))
	require.NoError(t, l.Emit(events.Resume, map[string]any{"step": 100, "epoch": 2, "batch": 5, "dir": "runs/x/step-00000100"}))
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
	}{{events.RunStart, 1}, {events.RunStart, 2}, {events.Resume, 2}} {
		assert.Equal(t, want.typ, evs[i].Type, i)
		assert.Equal(t, want.incarnation, evs[i].Incarnation, i)
	}
	assert.Equal(t, map[string]any{"config_hash": "9f86d081", "device": "cpu", "pid": 4242.0, "libtorch": "1.13.1"}, evs[0].Fields)
	assert.Equal(t, map[string]any{"step": 100.0, "epoch": 2.0, "batch": 5.0, "dir": "runs/x/step-00000100"}, evs[2].Fields)
}

func TestLineFormat(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	before := time.Now().UTC()
	require.NoError(t, l.Emit(events.EpochEnd, map[string]any{
		"train_loss": 0.5, "step": 300, "epoch": 1, "metrics": map[string]float64{"val_loss": 0.25, "mae": 0.1},
		"note": "a\nb <&>",
	}))
	after := time.Now().UTC()

	data, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	line := string(data)
	require.True(t, strings.HasSuffix(line, "}\n"), line)
	assert.Equal(t, 1, strings.Count(line, "\n"), "one line")
	prefix, rest, ok := strings.Cut(line, `","type":"epoch_end","incarnation":1,`)
	require.True(t, ok, line)
	ts, ok := strings.CutPrefix(prefix, `{"time":"`)
	require.True(t, ok, line)
	assert.Equal(t, `"epoch":1,"metrics":{"mae":0.1,"val_loss":0.25},"note":"a\nb \u003c\u0026\u003e","step":300,"train_loss":0.5}`+"\n", rest)
	tm, err := time.Parse(time.RFC3339Nano, ts)
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(ts, "Z"), ts)
	assert.False(t, tm.Before(before.Truncate(0)) || tm.After(after), "%s not in [%s, %s]", tm, before, after)

	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.True(t, evs[0].Time.Equal(tm))
	assert.Equal(t, "a\nb <&>", evs[0].Fields["note"])
}

func TestNonFinite(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	require.NoError(t, l.Emit(events.EpochEnd, map[string]any{
		"epoch": 1, "step": 2, "train_loss": math.NaN(),
		"metrics": map[string]float64{"val_loss": math.Inf(1), "mae": 0.5}, "grad": float32(math.Inf(-1)),
	}))
	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "NaN", evs[0].Fields["train_loss"])
	assert.Equal(t, map[string]any{"val_loss": "+Inf", "mae": 0.5}, evs[0].Fields["metrics"])
	assert.Equal(t, "-Inf", evs[0].Fields["grad"])
}

func TestEmitRejects(t *testing.T) {
	cases := []struct {
		name   string
		typ    string
		fields map[string]any
		msg    string
	}{
		{"EmptyType", "", nil, "emit  event: empty event type"},
		{"ReservedTime", "custom", map[string]any{"time": "now"}, `emit custom event: field "time" is reserved`},
		{"ReservedIncarnation", events.Exit, map[string]any{"incarnation": 3}, `emit exit event: field "incarnation" is reserved`},
		{"MissingField", events.CheckpointCommit, map[string]any{"step": 1, "reason": "periodic", "blocking_ms": 1.5, "persist_ms": 20.0, "bytes": 1024},
			`emit checkpoint_commit event: missing field "dir"`},
		{"Unencodable", "custom", map[string]any{"ch": make(chan int)}, `emit custom event: field "ch": json: unsupported type: chan int`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir)
			assert.EqualError(t, l.Emit(tc.typ, tc.fields), tc.msg)
			data, err := os.ReadFile(filepath.Join(dir, events.FileName))
			require.NoError(t, err)
			assert.Empty(t, data)
		})
	}
}

func TestUnknownTypeAllowed(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, openLog(t, dir).Emit("eval", nil))
	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, "eval", evs[0].Type)
	assert.Equal(t, map[string]any{}, evs[0].Fields)
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
			require.NoError(t, l.Emit(events.Exit, map[string]any{"code": 0, "reason": "done", "step": 9}))
			evs, err = events.Read(path)
			require.NoError(t, err, "every line is whole")
			require.Len(t, evs, tc.before+1)
			assert.Equal(t, events.Exit, evs[tc.before].Type)
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			assert.Equal(t, tc.before+1, bytes.Count(data, []byte("\n")))
		})
	}
}

func TestReadRejects(t *testing.T) {
	good := `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":1,"code":0}`
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
		{"ZeroIncarnation", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":0}`, "no incarnation"},
		{"FractionalIncarnation", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":1.5}`, "no incarnation"},
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

// TestDurableTypes: checkpoint_commit, emergency_checkpoint and exit are fsynced; the others not.
func TestDurableTypes(t *testing.T) {
	cases := []struct {
		typ    string
		fields map[string]any
		synced bool
	}{
		{events.RunStart, runStart(), false},
		{events.Resume, map[string]any{"step": 1, "epoch": 0, "batch": 1, "dir": "d"}, false},
		{events.CheckpointBegin, map[string]any{"step": 1, "reason": "periodic"}, false},
		{events.CheckpointCommit, map[string]any{"step": 1, "reason": "periodic", "blocking_ms": 1.5, "persist_ms": 20.0, "bytes": 1024, "dir": "d"}, true},
		{events.CheckpointFailed, map[string]any{"error": "no space left on device"}, false},
		{events.CheckpointInvalid, map[string]any{"dir": "d", "reason": "model.pt: sha256 mismatch"}, false},
		{events.SignalReceived, map[string]any{"signal": "terminated"}, false},
		{events.EmergencyCheckpoint, map[string]any{"step": 1}, true},
		{events.EpochEnd, map[string]any{"epoch": 0, "step": 1, "train_loss": 0.5, "metrics": map[string]float64{}}, false},
		{events.Exit, map[string]any{"code": 75, "reason": "preempted", "step": 1}, true},
	}
	for _, tc := range cases {
		t.Run(tc.typ, func(t *testing.T) {
			l := openLog(t, t.TempDir())
			rf := record(l)
			require.NoError(t, l.Emit(tc.typ, tc.fields))
			want := 0
			if tc.synced {
				want = 1
			}
			assert.Equal(t, want, rf.syncs)
		})
	}
}

func TestSyncError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	rf := record(l)
	rf.failSync = true
	err := l.Emit(events.Exit, map[string]any{"code": 1, "reason": "error", "step": 3})
	require.ErrorIs(t, err, syscall.EIO)
	assert.Contains(t, err.Error(), "emit exit event to "+filepath.Join(dir, events.FileName)+": ")
}

// TestFailedWriteCutOff: a write that fails half-way is cut off, so later events stay readable.
func TestFailedWriteCutOff(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	rf := record(l)
	require.NoError(t, l.Emit(events.SignalReceived, map[string]any{"signal": "terminated"}))
	rf.failWrite = true
	err := l.Emit(events.EmergencyCheckpoint, map[string]any{"step": 7})
	require.ErrorIs(t, err, syscall.ENOSPC)
	rf.failWrite = false
	require.NoError(t, l.Emit(events.Exit, map[string]any{"code": 75, "reason": "preempted", "step": 7}))

	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, 2)
	assert.Equal(t, events.SignalReceived, evs[0].Type)
	assert.Equal(t, events.Exit, evs[1].Type)
}

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
				assert.NoError(t, l.Emit("tick", map[string]any{"g": g, "i": i, "pad": pad}))
			}
		})
	}
	wg.Wait()

	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	require.Len(t, evs, goroutines*each)
	seen := map[string]bool{}
	for _, ev := range evs {
		require.Equal(t, pad, ev.Fields["pad"])
		key := fmt.Sprint(ev.Fields["g"], "/", ev.Fields["i"])
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
	assert.EqualError(t, l.Emit(events.SignalReceived, map[string]any{"signal": "interrupt"}),
		"emit signal_received event: log "+filepath.Join(dir, events.FileName)+" is closed")

	_, err = events.Open(filepath.Join(dir, "absent"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
