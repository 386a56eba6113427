package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/events"
	"spottrain/events/eventstest"
)

// noticeJob is the job of TestNoticeAtAnyPhase: 3 epochs of 30 steps, the validation scored in
// batches of 8 windows, a checkpoint every 7 steps (so that the last step, 90, is saved by the
// final checkpoint, and the end of epoch 1, step 30, by none).
func noticeJob() []string {
	return exactJob("run", 3, "checkpoint.every_steps=7", "train.eval_batch_size=8")
}

// pauseAt holds a phase of the trainer open (testhooks.go): each time the job passes point, it
// waits up to d, less once a notice is pending, and it says "test hook: pausing in POINT" the
// first time.
func pauseAt(point string, d time.Duration) []string {
	return []string{fmt.Sprintf("SPOTTRAIN_TEST_PAUSE=%s=%s", point, d)}
}

// awaitCaught waits until the process pid catches SIGTERM, which the binary does from its first
// instruction after the dynamic loader (preinit.c): a SIGTERM sent then lands in the startup,
// in the initializers of libtorch (about 0.9 s here), before the Go runtime starts.
func awaitCaught(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		require.NoError(t, err)
		for _, l := range strings.Split(string(status), "\n") {
			if hex, ok := strings.CutPrefix(l, "SigCgt:"); ok {
				mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
				require.NoError(t, err)
				if mask&(1<<(syscall.SIGTERM-1)) != 0 {
					return
				}
			}
		}
		time.Sleep(time.Millisecond) // polling /proc: there is nothing to wait on
	}
	t.Fatalf("process %d never caught SIGTERM", pid)
}

// TestNoticeAtAnyPhase sends a notice (SIGTERM, SIGHUP or SIGINT) to the trainer in each phase of
// its life, held open by the test hooks where it is short: during its startup (before main),
// its data loading, the restore of a checkpoint, a step, an evaluation, the final evaluation and
// the final checkpoint. Each time the trainer exits 75 within seconds, having done no step after
// the notice (the evaluation in progress is abandoned), and with every step it did saved: started
// again, the run completes soundly (verify) with the weights of an uninterrupted run.
func TestNoticeAtAnyPhase(t *testing.T) {
	t.Parallel()
	args := noticeJob()
	want := baselineWeights(t, args)
	for _, tc := range []struct {
		phase string // and the pause point of the test hooks ("": none, startup)
		hold  time.Duration
		sig   syscall.Signal
		first bool   // a first trainer is preempted at step 10 (or a little later), so that this one restores
		says  string // a line of the trainer's stdout (a regexp)
		step  int    // the step of its exit event; -1: it opened no log; 0: the step it signalled, or resumed at
	}{
		{phase: "", sig: syscall.SIGTERM, says: `^terminated received during (startup|prepare): stopping, with nothing new to save$`, step: -1},
		{phase: "data", hold: time.Minute, sig: syscall.SIGTERM, says: `^terminated received during prepare: stopping`, step: -1},
		{phase: "restore", hold: time.Minute, sig: syscall.SIGHUP, first: true, says: `^hangup received during restore: stopping`},
		{phase: "step", hold: time.Minute, sig: syscall.SIGHUP, says: `^hangup received: checkpointing at step \d+$`, step: 0},
		{phase: "eval", hold: 100 * time.Millisecond, sig: syscall.SIGTERM, says: `^terminated received during the evaluation of epoch 1: abandoning it, checkpointing at step 30$`, step: 30},
		{phase: "final-eval", hold: 100 * time.Millisecond, sig: syscall.SIGTERM, says: `^terminated received during the evaluation of epoch 3: abandoning it, checkpointing at step 90$`, step: 90},
		{phase: "final-save", hold: time.Minute, sig: syscall.SIGINT, says: `^interrupt received during the final checkpoint: stopping`, step: 90},
	} {
		name := tc.phase
		if name == "" {
			name = "startup"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			runDir := filepath.Join(dir, "run")
			step := tc.step
			if tc.first {
				step = int(preempt(t, dir, nil, args, 10, -1))
			}
			var env []string
			if tc.phase != "" {
				env = pauseAt(tc.phase, tc.hold)
			}
			p := startSpottrain(t, dir, env, args...)
			if tc.phase == "" {
				awaitCaught(t, p.cmd.Process.Pid)
			} else {
				p.readLine("test hook: pausing in "+tc.phase, time.Minute)
			}
			sent := time.Now()
			require.NoError(t, p.cmd.Process.Signal(tc.sig))
			code := p.wait(time.Minute)
			took := time.Since(sent)
			require.Equal(t, codes.ExitPreempted, code, "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
			assert.Regexp(t, regexp.MustCompile(`(?m)`+tc.says), p.stdout())
			assert.Contains(t, errorLine(t, p.stderr.String()), "stopped by "+tc.sig.String())
			assert.Less(t, took, 5*time.Second, "from the signal to the exit")

			// What the trainer recorded: nothing at all before the run dir was open; else the
			// notice, and an exit at the step the notice found.
			inProcess := "-"
			if tc.step < 0 {
				assert.NoFileExists(t, filepath.Join(runDir, events.FileName))
			} else {
				evs := eventstest.Read(t, runDir)
				got := eventstest.Of[events.SignalReceived](evs)
				require.NotEmpty(t, got)
				notice := got[len(got)-1]
				assert.Equal(t, tc.sig.String(), notice.Signal)
				exits := eventstest.Of[events.Exit](evs)
				exit := exits[len(exits)-1]
				assert.Equal(t, codes.ExitPreempted, exit.Code)
				if step > 0 {
					assert.Equal(t, step, exit.Step, "the exit's step: no step after the notice")
				}
				assert.Equal(t, notice.Step, exit.Step)
				require.NotNil(t, exit.SignalToExitMS)
				inProcess = fmt.Sprintf("%d ms", *exit.SignalToExitMS)
			}
			t.Logf("notice-to-exit %-10s %-10s %5d ms from the signal to the exit (in-process %s)",
				name, tc.sig, took.Milliseconds(), inProcess)

			r := spottrain(t, dir, args...)
			require.Equal(t, 0, r.code, "restart: stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Equal(t, want, weightsOf(t, newest(t, runDir)), "final weights differ from the uninterrupted run's")
			v := spottrain(t, dir, "verify", "run")
			assert.Equal(t, 0, v.code, "verify: %s%s", v.stdout, v.stderr)
		})
	}
}
