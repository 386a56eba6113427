package preemption_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/events"
	"spottrain/preemption"
)

// harness re-executes the test binary as a fake trainer and turns its output lines into
// channels, so fake timers can fire exactly when the child is ready or has ignored a SIGTERM.
type harness struct {
	t        *testing.T
	dir      string
	ready    chan struct{}
	ignoring chan struct{}
	stop     chan struct{}
	events   []events.Payload
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, dir: t.TempDir(), ready: make(chan struct{}, 16), ignoring: make(chan struct{}, 16), stop: make(chan struct{})}
	t.Cleanup(func() { close(h.stop) })
	return h
}

func (h *harness) command(mode string, target int) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "PREEMPTION_TEST_CHILD="+mode, "PREEMPTION_TEST_DIR="+h.dir,
			"PREEMPTION_TEST_TARGET="+strconv.Itoa(target))
		cmd.Stdout = &lineWriter{h: h}
		cmd.Stderr = os.Stderr
		return cmd
	}
}

func (h *harness) onEvent(p events.Payload) {
	h.events = append(h.events, p)
}

// after fires a wait of gap when the child says "ready", one of grace when it says "ignoring",
// and any other wait (the restart delay) at once.
func (h *harness) after(gap, grace time.Duration) func(time.Duration) <-chan time.Time {
	return func(d time.Duration) <-chan time.Time {
		ch := make(chan time.Time, 1)
		var on chan struct{}
		switch d {
		case gap:
			on = h.ready
		case grace:
			on = h.ignoring
		default:
			ch <- time.Time{}
			return ch
		}
		go func() {
			select {
			case <-on:
				ch <- time.Time{}
			case <-h.stop:
			}
		}()
		return ch
	}
}

func (h *harness) file(name string) string {
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	require.NoError(h.t, err)
	return string(b)
}

type lineWriter struct {
	h   *harness
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		switch string(w.buf[:i]) {
		case "ready":
			w.h.ready <- struct{}{}
		case "ignoring":
			w.h.ignoring <- struct{}{}
		}
		w.buf = w.buf[i+1:]
	}
}

// wall converts spot time as the Runner does.
func wall(spot time.Duration, scale float64) time.Duration {
	return time.Duration(float64(spot) / scale)
}

// withoutPID drops the pid, which differs between runs.
func withoutPID(evs []events.Payload) []events.Payload {
	out := make([]events.Payload, len(evs))
	for i, e := range evs {
		switch p := e.(type) {
		case events.ChildStart:
			p.PID = 0
			e = p
		case events.InterruptSent:
			p.PID = 0
			e = p
		case events.ChildExit:
			p.PID = 0
			e = p
		}
		out[i] = e
	}
	return out
}

func TestRunnerInterruptedRunCompletes(t *testing.T) {
	h := newHarness(t)
	cfg := preemption.Config{Pattern: "regular", Every: time.Hour, NoNoticeShare: 0.5, Seed: 4,
		RestartDelay: 2 * time.Minute, TimeScale: 3600}
	const interrupts = 5
	r, err := preemption.NewRunner(cfg, h.command("trainer", interrupts+1))
	require.NoError(t, err)
	r.OnEvent = h.onEvent
	r.After = h.after(wall(time.Hour, 3600), preemption.DefaultGrace) // grace is wall time

	start := time.Now()
	require.NoError(t, r.Run(context.Background()))
	t.Logf("%d interrupts in %s", interrupts, time.Since(start))

	// The same seed gives the same schedule: build the events the run must have reported.
	twin, err := cfg.Schedule()
	require.NoError(t, err)
	want := []events.Payload{events.ChildStart{Attempt: 0}}
	notices := 0
	for i := range interrupts {
		it := twin.Next()
		if it.Notice {
			notices++
			want = append(want,
				events.InterruptSent{Kind: codes.Notice, Reason: codes.Schedule, AtSpotS: it.At.Seconds()},
				events.ChildExit{Code: codes.ExitPreempted, Signal: "", Caused: true})
		} else {
			want = append(want,
				events.InterruptSent{Kind: codes.Kill, Reason: codes.Schedule, AtSpotS: it.At.Seconds()},
				events.ChildExit{Code: -1, Signal: "killed", Caused: true})
		}
		want = append(want, events.Restart{Attempt: i + 1, DelayS: 120.0},
			events.ChildStart{Attempt: i + 1})
	}
	want = append(want, events.ChildExit{Code: codes.ExitDone, Signal: "", Caused: false})
	require.True(t, notices > 0 && notices < interrupts, "seed 4 should mix both kinds; got %d notices", notices)

	assert.Equal(t, want, withoutPID(h.events))
	assert.Equal(t, strconv.Itoa(interrupts+1), h.file("progress"))
	assert.Equal(t, strings.Repeat("term\n", notices), h.file("markers"), "one emergency checkpoint per notice")
}

func TestRunnerKillsAfterGrace(t *testing.T) {
	h := newHarness(t)
	cfg := preemption.Config{Pattern: "regular", Every: time.Hour, Grace: time.Minute, TimeScale: 3600}
	r, err := preemption.NewRunner(cfg, h.command("ignore", 2))
	require.NoError(t, err)
	r.OnEvent = h.onEvent
	r.After = h.after(wall(time.Hour, 3600), time.Minute) // grace is wall time

	require.NoError(t, r.Run(context.Background()))
	assert.Equal(t, []events.Payload{
		events.ChildStart{Attempt: 0},
		events.InterruptSent{Kind: codes.Notice, Reason: codes.Schedule, AtSpotS: 3600.0},
		events.InterruptSent{Kind: codes.Kill, Reason: codes.Grace},
		events.ChildExit{Code: -1, Signal: "killed", Caused: true},
		events.Restart{Attempt: 1, DelayS: 0.0},
		events.ChildStart{Attempt: 1},
		events.ChildExit{Code: codes.ExitDone, Signal: "", Caused: false},
	}, withoutPID(h.events))
}

func TestRunnerChildFailure(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		want       preemption.ExitError
		msg        string
	}{
		{"ExitCode", "fail", preemption.ExitError{Code: 3}, "exit code 3"},
		{"SignalNotSent", "selfkill", preemption.ExitError{Code: -1, Signal: "killed"}, "did not send"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			r, err := preemption.NewRunner(preemption.Config{Pattern: "poisson", RatePerHour: 1}, h.command(tc.mode, 1))
			require.NoError(t, err)
			r.OnEvent = h.onEvent

			err = r.Run(context.Background())
			var ee *preemption.ExitError
			require.True(t, errors.As(err, &ee), "got %v", err)
			assert.Equal(t, tc.want, *ee)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Equal(t, []events.Payload{events.ChildStart{Attempt: 0},
				events.ChildExit{Code: tc.want.Code, Signal: tc.want.Signal, Caused: false}},
				withoutPID(h.events))
		})
	}
}

func TestRunnerCancelForwardsSIGTERM(t *testing.T) {
	h := newHarness(t)
	// Real timers (After unset): the first interrupt is 1000 h away, so only the cancel acts.
	r, err := preemption.NewRunner(preemption.Config{Pattern: "regular", Every: 1000 * time.Hour}, h.command("trainer", 10))
	require.NoError(t, err)
	r.OnEvent = h.onEvent

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-h.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("child never became ready")
	}
	cancel()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "term\n", h.file("markers"))
	assert.Equal(t, []events.Payload{
		events.ChildStart{Attempt: 0},
		events.InterruptSent{Kind: codes.Notice, Reason: codes.Cancel},
		events.ChildExit{Code: codes.ExitPreempted, Signal: "", Caused: true},
	}, withoutPID(h.events))
}

// started wraps command to hand each command it makes to the test, which may signal the child once
// it says "ready" (Start has set cmd.Process by then).
func started(command func() *exec.Cmd) (func() *exec.Cmd, <-chan *exec.Cmd) {
	cmds := make(chan *exec.Cmd, 16)
	return func() *exec.Cmd {
		cmd := command()
		cmds <- cmd
		return cmd
	}, cmds
}

// preemptByOthers waits until the child is ready and sends it a SIGTERM the Runner knows nothing
// of (a spot VM's own notice, or the terminal's signal on Ctrl+C).
func (h *harness) preemptByOthers(cmds <-chan *exec.Cmd) {
	h.t.Helper()
	var cmd *exec.Cmd
	select {
	case cmd = <-cmds:
	case <-time.After(10 * time.Second):
		h.t.Fatal("child never started")
	}
	select {
	case <-h.ready:
	case <-time.After(10 * time.Second):
		h.t.Fatal("child never became ready")
	}
	require.NoError(h.t, cmd.Process.Signal(syscall.SIGTERM))
}

// waitRun waits for Run's result.
func waitRun(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

// TestRunnerNoSchedule: with no Schedule the Runner never interrupts; a child preempted by someone
// else (exit 75) is started again after the restart delay, and exit 0 ends the run.
func TestRunnerNoSchedule(t *testing.T) {
	h := newHarness(t)
	command, cmds := started(h.command("trainer", 2))
	var waits []time.Duration
	r := &preemption.Runner{
		Command: command, Grace: time.Minute, RestartDelay: 2 * time.Minute, TimeScale: 60,
		OnEvent: h.onEvent,
		After: func(d time.Duration) <-chan time.Time {
			waits = append(waits, d)
			ch := make(chan time.Time, 1)
			ch <- time.Time{}
			return ch
		},
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	h.preemptByOthers(cmds)
	require.NoError(t, waitRun(t, done))

	assert.Equal(t, []events.Payload{
		events.ChildStart{Attempt: 0},
		events.ChildExit{Code: codes.ExitPreempted, Signal: "", Caused: false},
		events.Restart{Attempt: 1, DelayS: 120.0},
		events.ChildStart{Attempt: 1},
		events.ChildExit{Code: codes.ExitDone, Signal: "", Caused: false},
	}, withoutPID(h.events), "no interrupt_sent")
	assert.Equal(t, []time.Duration{2 * time.Second}, waits, "only the restart delay, scaled; no interrupt is armed")
	assert.Len(t, cmds, 1, "two starts") // the first was taken by preemptByOthers
	assert.Equal(t, "2", h.file("progress"))
	assert.Equal(t, "term\n", h.file("markers"))
}

// TestRunnerNoRestartAfterCancel: a child that exits 75 by itself just as ctx is cancelled (the
// same Ctrl+C reached both) is not started again: Run returns ctx.Err() before the next attempt.
// ctx is cancelled from the child_exit report, after Run has seen the exit and before it decides.
func TestRunnerNoRestartAfterCancel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		schedule bool
	}{{"NoSchedule", false}, {"Schedule", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			command, cmds := started(h.command("trainer", 10))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &preemption.Runner{
				Command: command, Grace: time.Minute, RestartDelay: time.Minute,
				OnEvent: func(p events.Payload) {
					h.onEvent(p)
					if _, ok := p.(events.ChildExit); ok {
						cancel()
					}
				},
				After: func(time.Duration) <-chan time.Time { return make(chan time.Time) }, // never fires
			}
			if tc.schedule {
				s, err := preemption.Config{Pattern: "regular", Every: time.Hour}.Schedule()
				require.NoError(t, err)
				r.Schedule = s
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			h.preemptByOthers(cmds)
			err := waitRun(t, done)

			assert.ErrorIs(t, err, context.Canceled)
			assert.Equal(t, []events.Payload{events.ChildStart{Attempt: 0},
				events.ChildExit{Code: codes.ExitPreempted, Signal: "", Caused: false}},
				withoutPID(h.events), "no restart")
			assert.Empty(t, cmds, "one start")
			assert.Equal(t, "1", h.file("progress"))
		})
	}
}

// TestRunnerCancelledBeforeStart: Run with a cancelled ctx starts nothing.
func TestRunnerCancelledBeforeStart(t *testing.T) {
	h := newHarness(t)
	command, cmds := started(h.command("trainer", 10))
	r := &preemption.Runner{Command: command, OnEvent: h.onEvent}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, r.Run(ctx), context.Canceled)
	assert.Empty(t, cmds)
	assert.Empty(t, h.events)
}

// TestRunnerNoScheduleCancel: with no Schedule a Ctrl+C still reaches the child as a SIGTERM.
func TestRunnerNoScheduleCancel(t *testing.T) {
	h := newHarness(t)
	r := &preemption.Runner{Command: h.command("trainer", 10), Grace: time.Minute, OnEvent: h.onEvent,
		After: func(time.Duration) <-chan time.Time { return make(chan time.Time) }} // the grace never runs out
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case <-h.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("child never became ready")
	}
	cancel()
	assert.ErrorIs(t, waitRun(t, done), context.Canceled)
	assert.Equal(t, "term\n", h.file("markers"))
	assert.Equal(t, []events.Payload{
		events.ChildStart{Attempt: 0},
		events.InterruptSent{Kind: codes.Notice, Reason: codes.Cancel},
		events.ChildExit{Code: codes.ExitPreempted, Signal: "", Caused: true},
	}, withoutPID(h.events))
}
