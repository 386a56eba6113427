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
		{"ProgressMissingLoss", events.Progress, map[string]any{"step": 10, "epoch": 0}, `emit progress event: missing field "loss"`},
		{"InterruptSentMissingPID", events.InterruptSent, map[string]any{"kind": "notice", "reason": "schedule"},
			`emit interrupt_sent event: missing field "pid"`},
		{"ChildExitMissingCaused", events.ChildExit, map[string]any{"pid": 7, "code": 75, "signal": ""},
			`emit child_exit event: missing field "caused"`},
		{"RestartMissingDelay", events.Restart, map[string]any{"attempt": 1}, `emit restart event: missing field "delay_s"`},
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
		{"NegativeIncarnation", `{"time":"2025-11-24T20:00:00Z","type":"exit","incarnation":-1}`, "no incarnation"},
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

// TestDurableTypes: checkpoint_commit, emergency_checkpoint, exit and child_exit are fsynced; the
// others not, whichever writer (trainer or runner) emits them.
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
		{events.Progress, map[string]any{"step": 50, "epoch": 0, "loss": 1.25}, false},
		{events.InterruptSent, map[string]any{"kind": "notice", "reason": "schedule", "pid": 4242}, false},
		{events.ChildExit, map[string]any{"pid": 4242, "code": 75, "signal": "", "caused": true}, true},
		{events.Restart, map[string]any{"attempt": 1, "delay_s": 120.0}, false},
	}
	for _, tc := range cases {
		for _, w := range writers {
			t.Run(tc.typ+"/"+w.name, func(t *testing.T) {
				l := w.open(t, t.TempDir())
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
	before, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	rf.failWrite = true
	err = l.Emit(events.EmergencyCheckpoint, map[string]any{"step": 7})
	require.ErrorIs(t, err, syscall.ENOSPC)
	rf.failWrite = false
	after, err := os.ReadFile(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	assert.Equal(t, string(before), string(after), "exactly the partial line is cut off")
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

// readEvents reads the log of dir.
func readEvents(t *testing.T, dir string) []events.Event {
	t.Helper()
	evs, err := events.Read(filepath.Join(dir, events.FileName))
	require.NoError(t, err)
	return evs
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

func childExit(code int) map[string]any {
	return map[string]any{"pid": 4242, "code": code, "signal": "", "caused": true}
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
	assert.EqualError(t, l.Emit(events.Restart, map[string]any{"attempt": 1, "delay_s": 0.0}),
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
	require.NoError(t, trainer.Emit(events.RunStart, runStart()))
	require.NoError(t, trainer.Emit(events.Progress, map[string]any{"step": 50, "epoch": 0, "loss": 2.5}))
	require.NoError(t, runner.Emit(events.InterruptSent, map[string]any{"kind": "notice", "reason": "schedule", "pid": 4242}))
	require.NoError(t, trainer.Emit(events.SignalReceived, map[string]any{"signal": "terminated"}))
	require.NoError(t, trainer.Emit(events.EmergencyCheckpoint, map[string]any{"step": 64}))
	require.NoError(t, trainer.Emit(events.Exit, map[string]any{"code": 75, "reason": "preempted", "step": 64}))
	require.NoError(t, trainer.Close())
	require.NoError(t, runner.Emit(events.ChildExit, childExit(75)))
	require.NoError(t, runner.Emit(events.Restart, map[string]any{"attempt": 1, "delay_s": 120.0}))

	trainer = openLog(t, dir)
	require.Equal(t, 2, trainer.Incarnation(), "the runner's lines do not count")
	require.NoError(t, trainer.Emit(events.RunStart, runStart()))
	require.NoError(t, runner.Emit(events.InterruptSent, map[string]any{"kind": "kill", "reason": "schedule", "pid": 4343}))
	require.NoError(t, runner.Emit(events.ChildExit, map[string]any{"pid": 4343, "code": -1, "signal": "killed", "caused": true}))

	evs := readEvents(t, dir)
	assert.Equal(t, []typeIncarnation{
		{events.RunStart, 1},
		{events.Progress, 1},
		{events.InterruptSent, 0},
		{events.SignalReceived, 1},
		{events.EmergencyCheckpoint, 1},
		{events.Exit, 1},
		{events.ChildExit, 0},
		{events.Restart, 0},
		{events.RunStart, 2},
		{events.InterruptSent, 0},
		{events.ChildExit, 0},
	}, typesAndIncarnations(evs))
	assert.Equal(t, map[string]any{"pid": 4242.0, "code": 75.0, "signal": "", "caused": true}, evs[6].Fields)
	assert.Equal(t, map[string]any{"attempt": 1.0, "delay_s": 120.0}, evs[7].Fields)
	for i := 1; i < len(evs); i++ {
		assert.False(t, evs[i].Time.Before(evs[i-1].Time), "event %d is earlier than event %d", i, i-1)
	}
}

// TestOpenIncarnationIgnoresRunner: the runner's incarnation-0 lines never move the trainer's
// incarnation: it is one more than the largest trainer incarnation, or 1.
func TestOpenIncarnationIgnoresRunner(t *testing.T) {
	restart := map[string]any{"attempt": 1, "delay_s": 0.0}
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
			require.NoError(t, r.Emit(events.ChildExit, childExit(75)))
			require.NoError(t, r.Emit(events.Restart, restart))
		}, 1},
		{"RunnerLinesAfterOneTrainer", func(t *testing.T, dir string) {
			r := openRunner(t, dir)
			require.NoError(t, openLog(t, dir).Emit(events.RunStart, runStart()))
			require.NoError(t, r.Emit(events.ChildExit, childExit(75)))
			require.NoError(t, r.Emit(events.Restart, restart))
		}, 2},
		{"RunnerLinesAroundTwoTrainers", func(t *testing.T, dir string) {
			r := openRunner(t, dir)
			require.NoError(t, r.Emit(events.InterruptSent, map[string]any{"kind": "notice", "reason": "cancel", "pid": 1}))
			require.NoError(t, openLog(t, dir).Emit(events.RunStart, runStart()))
			require.NoError(t, r.Emit(events.Restart, restart))
			require.NoError(t, openLog(t, dir).Emit(events.RunStart, runStart()))
			require.NoError(t, r.Emit(events.Restart, restart))
		}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			l := openLog(t, dir)
			assert.Equal(t, tc.want, l.Incarnation())
			require.NoError(t, l.Emit(events.RunStart, runStart()))
			evs := readEvents(t, dir)
			assert.Equal(t, typeIncarnation{events.RunStart, tc.want}, typesAndIncarnations(evs)[len(evs)-1])
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
	assert.Equal(t, []typeIncarnation{{events.Restart, 0}, {events.RunStart, 1}, {events.ChildExit, 0}}, typesAndIncarnations(evs))
	assert.Equal(t, map[string]any{"pid": 1.0, "code": 0.0, "signal": "", "caused": false}, evs[2].Fields)
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
			require.NoError(t, trainer.Emit(events.RunStart, runStart()))
			require.NoError(t, runner.Emit(events.InterruptSent, map[string]any{"kind": "notice", "reason": "schedule", "pid": 4242}))
			// The trainer dies in the middle of its next write.
			appendRaw(t, path, tc.tail)
			before, err := os.ReadFile(path)
			require.NoError(t, err)

			require.NoError(t, runner.Emit(events.ChildExit, childExit(-1)))

			data, err := os.ReadFile(path)
			require.NoError(t, err)
			whole := string(before[:len(before)-len(tc.tail)])
			require.True(t, strings.HasPrefix(string(data), whole), "the lines before the tail are untouched")
			rest := strings.TrimPrefix(string(data), whole)
			want := []typeIncarnation{{events.RunStart, 1}, {events.InterruptSent, 0}}
			if tc.kept {
				var ok bool
				rest, ok = strings.CutPrefix(rest, tc.tail+"\n")
				require.True(t, ok, "the whole event is kept and ended: %q", rest)
				want = append(want, typeIncarnation{events.Exit, 1})
			}
			// What follows is the runner's line alone: the torn line is gone.
			assert.True(t, strings.HasPrefix(rest, `{"time":"`) && strings.HasSuffix(rest, "}\n") &&
				strings.Count(rest, "\n") == 1 && strings.Contains(rest, `,"type":"child_exit","incarnation":0,`), "%q", rest)
			want = append(want, typeIncarnation{events.ChildExit, 0})
			assert.Equal(t, len(want), strings.Count(string(data), "\n"), "whole lines only")
			assert.Equal(t, want, typesAndIncarnations(readEvents(t, dir)))

			// The next trainer counts the one before it, not the runner.
			next := openLog(t, dir)
			assert.Equal(t, 2, next.Incarnation())
			require.NoError(t, next.Emit(events.RunStart, runStart()))
			assert.Len(t, readEvents(t, dir), len(want)+1)
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
		require.NoError(t, trainer.Emit(events.SignalReceived, map[string]any{"signal": "terminated"}))
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
		err = trainer.Emit(events.EmergencyCheckpoint, map[string]any{"step": 7})
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
				emitted <- runner.Emit(events.InterruptSent, map[string]any{"kind": "kill", "reason": "grace", "pid": 4242})
			}()
		}
		err := trainer.Emit(events.EmergencyCheckpoint, map[string]any{"step": 7})
		require.ErrorIs(t, err, syscall.ENOSPC)
		require.NotEmpty(t, f.partial)
		require.NoError(t, <-emitted)
		f.fail = false
		assert.Equal(t, []typeIncarnation{{events.SignalReceived, 1}, {events.InterruptSent, 0}}, typesAndIncarnations(readEvents(t, dir)))

		require.NoError(t, trainer.Emit(events.Exit, map[string]any{"code": 1, "reason": "error", "step": 7}))
		assert.Equal(t, []typeIncarnation{{events.SignalReceived, 1}, {events.InterruptSent, 0}, {events.Exit, 1}},
			typesAndIncarnations(readEvents(t, dir)))
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
				assert.NoError(t, l.Emit("tick", map[string]any{"i": i, "pad": pad}))
			}
		}()
	}
	wg.Wait()
	evs := readEvents(t, dir)
	require.Equal(t, 2*n, len(evs), "events lost")
	next := map[int]int{}
	for _, e := range evs {
		assert.Equal(t, float64(next[e.Incarnation]), e.Fields["i"], "incarnation %d", e.Incarnation)
		next[e.Incarnation]++
	}
	assert.Equal(t, map[int]int{0: n, 1: n}, next)
}
