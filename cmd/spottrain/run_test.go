package main

// End-to-end tests of the experiment side: config show, run (the runner that interrupts and
// restarts a real trainer process), batch and verify.

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/internal/testutil"
)

// spotJob is a small LSTM run of about 8 seconds of training on one thread (2.5 s with
// train.epochs=6), in a simulated spot market where one wall second is an hour:
// lstm-fixed-regular interrupts every 2 s of uptime, alternating notice (SIGTERM) and none
// (SIGKILL) for pattern seed 1, and the fixed strategy checkpoints every quarter of a second.
func spotJob(extra ...string) []string {
	var args []string
	for _, kv := range append([]string{
		"device=cpu", "threads=1", "data.lstm.days=365", "data.lstm.lookback_hours=24", "data.lstm.horizon_hours=6",
		"model.lstm.hidden_size=32", "model.lstm.num_layers=1", "train.epochs=20", "train.log_every=10",
		"interrupts.time_scale=3600", "interrupts.every=2h", "interrupts.jitter=0",
		"interrupts.no_notice_share=0.5", "interrupts.seed=1", "interrupts.restart_delay=1m",
		"checkpoint.every_seconds=900",
	}, extra...) {
		args = append(args, "--set", kv)
	}
	return args
}

// TestRunInterruptedEqualsBaseline is the end-to-end check of the study: a run interrupted at
// least three times, with and without notice, completes, verify finds it sound, and its final
// weights equal those of the on-demand baseline bit for bit (CPU, one thread).
func TestRunInterruptedEqualsBaseline(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrain(t, dir, append([]string{"run", "--experiment", "lstm-fixed-regular", "--runs-dir", "runs"}, spotJob()...)...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	runDir := filepath.Join(dir, "runs", "lstm-fixed-regular", "rep-0")
	assert.Contains(t, r.stdout, "[run] "+filepath.Join("runs", "lstm-fixed-regular", "rep-0")+": completed in ")
	assert.Regexp(t, `\[run\] interrupt at 2h0m0s of spot time: SIGTERM to pid \d+ \(schedule\)`, r.stdout)
	assert.Regexp(t, `\[run\] interrupt at 4h0m0s of spot time: SIGKILL to pid \d+ \(schedule\)`, r.stdout)

	evs := eventstest.Read(t, runDir)
	var notice, kill int
	for _, e := range evs {
		p, ok := e.Payload.(events.InterruptSent)
		if !ok {
			continue
		}
		assert.Equal(t, 0, e.Incarnation, "the runner's event")
		switch p.Kind {
		case codes.Notice:
			notice++
		case codes.Kill:
			kill++
		}
	}
	assert.GreaterOrEqual(t, notice+kill, 3, "interruptions")
	assert.GreaterOrEqual(t, notice, 1)
	assert.GreaterOrEqual(t, kill, 1)
	// A start per interruption and one more, but for an interruption that came as the last
	// trainer finished (it exited 0 all the same).
	exits := eventstest.Of[events.ChildExit](evs)
	require.Len(t, exits, len(eventstest.Of[events.ChildStart](evs)), "a child_exit for every start")
	assert.Contains(t, []int{notice + kill, notice + kill + 1}, len(exits))
	assert.Equal(t, codes.ExitDone, exits[len(exits)-1].Code)
	assert.Len(t, eventstest.Of[events.Restart](evs), len(exits)-1)
	assert.Len(t, eventstest.Of[events.RunnerStart](evs), 1)

	// The baseline: the same model and data, no interruptions.
	r = spottrain(t, dir, append([]string{"run", "--experiment", "lstm-ondemand", "--runs-dir", "runs"}, spotJob()...)...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "1 starts, interruptions: 0 with notice, 0 kills")

	r = spottrain(t, dir, "verify", "runs", "--exact")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Regexp(t, `(?m)^lstm-fixed-regular/rep-0\s+ok\s+\d+\s+[1-9]\d*\s+[1-9]\d*\s+\d+\s+\d+\s+= baseline$`, r.stdout)
	assert.Regexp(t, `(?m)^lstm-ondemand/rep-0\s+ok\s+1\s+0\s+0\s+0\s+\d+\s+baseline$`, r.stdout)
	assert.Contains(t, r.stdout, "all 2 runs are sound")

	// Every start that got as far as its run dir wrote a run_start; one interrupted before that
	// (a notice while it started: exit 75 with nothing to save; or a kill) wrote none.
	started := map[int]bool{}
	for _, s := range eventstest.Of[events.RunStart](evs) {
		started[s.PID] = true
	}
	for _, x := range exits {
		if !started[x.PID] {
			assert.Contains(t, []int{codes.ExitPreempted, -1}, x.Code, "child %d exited without a run_start", x.PID)
		}
	}

	// Run again: complete already, nothing trains.
	r = spottrain(t, dir, append([]string{"run", "--experiment", "lstm-fixed-regular", "--runs-dir", "runs"}, spotJob()...)...)
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Contains(t, r.stdout, "is complete already")
	assert.Len(t, eventstest.Of[events.RunStart](eventstest.Read(t, runDir)), len(started))
}

// TestVerifyFails: verify exits 1 with a table naming what is wrong with each unsound run.
func TestVerifyFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrain(t, dir, append([]string{"run", "--experiment", "lstm-ondemand", "--runs-dir", "runs"}, spotJob("train.epochs=2")...)...)
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	runDir := filepath.Join(dir, "runs", "lstm-ondemand", "rep-0")
	r = spottrain(t, dir, "verify", "runs")
	require.Equal(t, 0, r.code, "stdout: %s", r.stdout)

	// A checkpoint that no longer matches its manifest, and no final metrics.
	cks, _ := checkAllValid(t, runDir)
	testutil.Corrupt(t, filepath.Join(cks[0].Dir, "model.pt"))
	require.NoError(t, os.Remove(filepath.Join(runDir, "metrics.json")))
	r = spottrain(t, dir, "verify", "runs")
	assert.Equal(t, 1, r.code, "stdout: %s", r.stdout)
	assert.Regexp(t, `(?m)^lstm-ondemand/rep-0\s+FAIL\s`, r.stdout)
	assert.Contains(t, r.stdout, "1 of 1 runs failed:")
	assert.Contains(t, r.stdout, "final metrics: open "+filepath.Join("runs", "lstm-ondemand", "rep-0", "metrics.json"))
	assert.Contains(t, r.stdout, "does not verify")
	assert.Equal(t, "verify: 1 of 1 runs failed", errorLine(t, r.stderr))

	r = spottrain(t, dir, "verify", "nothing-here")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, errorLine(t, r.stderr), "nothing-here")
}

// ctrlC starts the runner command args in dir, sends it SIGINT once a line of stdout starts with
// line, checks that it exits 75 saying it was stopped, and returns its stdout.
func ctrlC(t *testing.T, dir string, args []string, line string) string {
	t.Helper()
	p := startSpottrain(t, dir, nil, args...)
	p.readLine(line, time.Minute)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	code := p.wait(time.Minute)
	assert.Equal(t, codes.ExitPreempted, code, "stdout: %s\nstderr: %s", p.stdout(), p.stderr.String())
	assert.Contains(t, errorLine(t, p.stderr.String()), "stopped by a signal: run the same command again to go on")
	return p.stdout()
}

// TestRunCtrlC: SIGINT to the runner reaches the trainer, which writes an emergency checkpoint;
// the runner exits 75 without starting it again, and the same command later completes the run.
func TestRunCtrlC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append([]string{"run", "--experiment", "lstm-ondemand", "--runs-dir", "runs"}, spotJob("train.log_every=1")...)
	ctrlC(t, dir, args, "step ")
	runDir := filepath.Join(dir, "runs", "lstm-ondemand", "rep-0")
	evs := eventstest.Read(t, runDir)
	assert.Empty(t, eventstest.Of[events.Restart](evs))
	require.Len(t, eventstest.Of[events.EmergencyCheckpoint](evs), 1)

	r := spottrain(t, dir, args...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "resumed from step ")
	r = spottrain(t, dir, "verify", "runs")
	assert.Equal(t, 0, r.code, "stdout: %s", r.stdout)
}

// TestBatchCtrlC: SIGINT to a batch stops the run in progress and starts no other; the batch says
// which runs it did not start and exits 75, as run does.
func TestBatchCtrlC(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append([]string{"batch", "lstm-ondemand", "--reps", "3", "--runs-dir", "runs"}, spotJob("train.log_every=1")...)
	out := ctrlC(t, dir, args, "[1/3] lstm-ondemand rep 0: running")
	assert.Contains(t, out, "[1/3] lstm-ondemand rep 0: stopped\n")
	assert.NotContains(t, out, "[2/3]")
	assert.NotContains(t, out, "[3/3]")
	assert.Contains(t, out, "batch: stopped by a signal: 0 runs done, 0 complete already, 0 failed, 1 stopped; "+
		"not started: 2 (lstm-ondemand rep 1, lstm-ondemand rep 2)\n")
	for _, rep := range []string{"rep-1", "rep-2"} {
		assert.NoDirExists(t, filepath.Join(dir, "runs", "lstm-ondemand", rep), "nothing started")
	}
}

// TestBatch runs an experiment glob twice over: runs that completed are skipped, so a batch
// stopped half-way goes on where it stopped. Each strategy's runs end with the baseline's weights.
func TestBatch(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append([]string{"batch", "lstm-ondemand", "lstm-*-poisson", "--reps", "2", "--runs-dir", "runs"},
		spotJob("train.epochs=2", "interrupts.rate_per_hour=1")...)
	r := spottrain(t, dir, args...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	for _, want := range []string{
		"[1/8] lstm-ondemand rep 0: done in ", "[2/8] lstm-ondemand rep 1: done in ",
		"[3/8] lstm-adaptive-poisson rep 0: done in ", "[8/8] lstm-milestone-poisson rep 1: done in ",
		"batch: 8 runs done, 0 complete already, 0 failed",
	} {
		assert.Contains(t, r.stdout, want)
	}
	// The run index seeds the pattern: rep 1 has interrupts.seed + 1.
	for rep, seed := range []uint64{1, 2} {
		evs := eventstest.Read(t, filepath.Join(dir, "runs", "lstm-fixed-poisson", "rep-"+string(rune('0'+rep))))
		starts := eventstest.Of[events.RunnerStart](evs)
		require.Len(t, starts, 1)
		assert.Equal(t, seed, starts[0].Seed)
	}
	r = spottrain(t, dir, args...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "batch: 0 runs done, 8 complete already, 0 failed")
	r = spottrain(t, dir, "verify", "runs", "--exact")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Equal(t, 7, strings.Count(r.stdout, "= baseline\n"), r.stdout) // the 6 spot runs and the other baseline

	// The study of these runs: a line per experiment, and the report with its figures.
	r = spottrain(t, dir, "analyze", "runs", "--out", "report")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Regexp(t, `(?m)^lstm-ondemand\s+-\s+2\s+0\.0\s+0\.0\s+[0-9.]+\s+-\s+rmse_kw=`, r.stdout)
	assert.Regexp(t, `(?m)^lstm-fixed-poisson\s+50%\s+2\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+-?\d+%\s+rmse_kw=`, r.stdout)
	assert.Contains(t, r.stdout, "8 runs (0 not completed, left out)")
	report, err := os.ReadFile(filepath.Join(dir, "report", "report.md"))
	require.NoError(t, err)
	figures := regexp.MustCompile(`!\[[^\]]*\]\(([^)]+\.png)\)`).FindAllStringSubmatch(string(report), -1)
	assert.GreaterOrEqual(t, len(figures), 7, "timeline, wasted, checkpoint, cost, savings, accuracy, progress")
	for _, f := range figures {
		for _, ext := range []string{".png", ".svg"} {
			st, err := os.Stat(filepath.Join(dir, "report", strings.TrimSuffix(f[1], ".png")+ext))
			if assert.NoError(t, err) {
				assert.Greater(t, st.Size(), int64(1000), f[1])
			}
		}
	}
	summary, err := os.ReadFile(filepath.Join(dir, "report", "metrics_summary.csv"))
	require.NoError(t, err)
	assert.Len(t, strings.Split(strings.TrimSpace(string(summary)), "\n"), 1+4, "a header and the 4 experiments")
	assert.Contains(t, string(report), "nvidia-t4: $0.14/h spot, $0.35/h on demand", "the LSTM layer's GPU")

	// Priced as another GPU: the report says so.
	r = spottrain(t, dir, "analyze", "runs", "--out", "report", "--gpu", "nvidia-a100-40gb")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	report, err = os.ReadFile(filepath.Join(dir, "report", "report.md"))
	require.NoError(t, err)
	assert.Contains(t, string(report), "nvidia-a100-40gb: $1.17/h spot, $2.93/h on demand")
	assert.Contains(t, string(report), "--gpu nvidia-a100-40gb")

	r = spottrain(t, dir, "batch", "gpt-*", "--runs-dir", "runs")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, errorLine(t, r.stderr), `no experiment matches "gpt-*"`)
	r = spottrain(t, dir, "batch", "lstm-ondemand", "--set", "train.epochs=0")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "--set train.epochs=0: train.epochs: must be >= 1 (got 0)", errorLine(t, r.stderr))
}

// TestConfigShow prints the merged config of an experiment, which loads back as the same config;
// with --origins each value names the layer and line that set it.
func TestConfigShow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrain(t, dir, "config", "show", "lstm-adaptive-bursty", "--set", "train.epochs=3")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	testutil.WriteFile(t, filepath.Join(dir, "shown.yaml"), r.stdout)
	got, err := configs.ReadSaved(filepath.Join(dir, "shown.yaml"))
	require.NoError(t, err)
	want, err := configs.Builtin().Experiment("lstm-adaptive-bursty", []string{"train.epochs=3"})
	require.NoError(t, err)
	assert.Equal(t, want, got)

	r = spottrain(t, dir, "config", "show", "--experiment", "lstm-adaptive-bursty", "--origins", "--set", "train.epochs=3")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	for _, re := range []string{
		`(?m)^  epochs: 3 # --set train.epochs=3$`,
		`(?m)^  strategy: adaptive # configs/strategies/adaptive.yaml:\d+$`,
		`(?m)^    hidden_size: 64 # configs/models/lstm-solar.yaml:\d+$`,
		`(?m)^  pattern: bursty # configs/experiments/lstm-adaptive-bursty.yaml:\d+$`,
		`(?m)^  every_steps: 0 # default$`,
	} {
		assert.Regexp(t, regexp.MustCompile(re), r.stdout)
	}
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^ *(resnet|depth|label_smoothing|workers):`), r.stdout, "no ResNet key in an LSTM config")
	r = spottrain(t, dir, "config", "show", "resnet50-ondemand", "--origins")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Regexp(t, regexp.MustCompile(`(?m)^    depth: 50 # configs/models/resnet50-cifar100.yaml:\d+$`), r.stdout)
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^ *(lstm|hidden_size|lookback_hours|days):`), r.stdout, "no LSTM key in a ResNet config")
	r = spottrain(t, dir, "config", "show", "lstm-ondemand", "--set", "model.depth=34")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "--set model.depth=34: model.depth: moved to model.resnet.depth, only for model.kind resnet (model.kind is lstm)", errorLine(t, r.stderr))

	r = spottrain(t, dir, "config", "list")
	require.Equal(t, 0, r.code)
	assert.Contains(t, r.stdout, "experiments (configs/experiments):\n")
	assert.Contains(t, r.stdout, "\n  lstm-milestone-bursty\n")

	// Another tree, and its errors.
	testutil.WriteFile(t, filepath.Join(dir, "tree", "models", "m.yaml"), "model:\n  lstm:\n    hidden_size: 8\n")
	testutil.WriteFile(t, filepath.Join(dir, "tree", "experiments", "e.yaml"), "layers:\n  model: m\n  strategy: fixed\n")
	r = spottrain(t, dir, "config", "show", "e", "--config-dir", "tree")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "tree/experiments/e.yaml:3: layers.strategy: no strategies/fixed.yaml in tree", errorLine(t, r.stderr))
	r = spottrain(t, dir, "config", "show", "nope")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "no experiments/nope.yaml in configs (it has 30: 'spottrain config list' shows them)", errorLine(t, r.stderr))
	r = spottrain(t, dir, "config", "show")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "config show: --experiment NAME or --config FILE is required", errorLine(t, r.stderr))
	assert.False(t, strings.Contains(r.stdout, "name:"))
}

// TestDemo runs the demo on a small job: a simulated spot run that it verifies; run again, it shows
// the same result without training.
func TestDemo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrain(t, dir, append([]string{"demo"}, spotJob("train.epochs=6")...)...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "demo: lstm-fixed-poisson, a simulated spot VM")
	assert.Contains(t, r.stdout, "skill = 1 - RMSE/RMSE_baseline")
	assert.Contains(t, r.stdout, "sound: every interruption was followed by a resume")
	assert.FileExists(t, filepath.Join(dir, "runs", "lstm-fixed-poisson", "rep-0", "metrics.json"))

	// Again: nothing trains, and the answer is the same table, read from the finished run.
	again := spottrain(t, dir, append([]string{"demo"}, spotJob("train.epochs=6")...)...)
	require.Equal(t, 0, again.code, "stdout: %s\nstderr: %s", again.stdout, again.stderr)
	assert.NotContains(t, again.stdout, "[run] trainer started")
	assert.Contains(t, again.stdout, filepath.Join("runs", "lstm-fixed-poisson", "rep-0")+" completed before (remove it to train again)")
	table := regexp.MustCompile(`(?m)^ *(forecast|LSTM|CLIPER|smart persistence|climatology|persistence \(24 h\)|skill =)[ :].*$`)
	first := table.FindAllString(r.stdout, -1)
	require.Len(t, first, 14, "the trainer's table, and the demo's at its end: %s", r.stdout)
	assert.Equal(t, first[:7], first[7:])
	assert.True(t, strings.HasSuffix(r.stdout, first[13]+"\n"), "the demo ends with the table: %s", r.stdout)
	assert.Equal(t, first[7:], table.FindAllString(again.stdout, -1)[7:], again.stdout)
	assert.Contains(t, again.stdout, "sound: every interruption was followed by a resume")
}

// TestAnalyzeErrors: bad input to analyze is one line naming what is wrong, exit 2, and no report.
func TestAnalyzeErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := filepath.Join(dir, "runs", "x", "rep-0")
	require.NoError(t, os.MkdirAll(run, 0o755))
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"NoRunsDir", []string{"analyze"}, "analyze: RUNS_DIR is required"},
		{"NoRuns", []string{"analyze", "runs"}, "no run directories (with an events.jsonl) under runs"},
		{"Missing", []string{"analyze", "nowhere"}, "nowhere"},
		{"UnknownGPU", []string{"analyze", "runs", "--gpu", "h200"}, `analyze: --gpu: unknown GPU "h200": the price list has nvidia-a100-40gb, nvidia-l4, nvidia-t4, nvidia-v100; or set --spot-price and --on-demand-price`},
		{"NegativePrice", []string{"analyze", "runs", "--spot-price", "-1"}, "analyze: --spot-price must be a price > 0 (got -1)"},
		{"BadFlag", []string{"analyze", "runs", "--outt", "x"}, "analyze: unknown flag: --outt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := spottrain(t, dir, append(tc.args, "--out", "report")...)
			assert.Equal(t, 2, r.code, "stdout: %s", r.stdout)
			assert.Contains(t, errorLine(t, r.stderr), tc.msg)
		})
	}

	// A run whose config.yaml is broken: named with its line, and nothing is written.
	require.NoError(t, os.WriteFile(filepath.Join(run, "events.jsonl"),
		[]byte(`{"time":"2026-11-24T12:00:00Z","type":"run_start","incarnation":1,"config_hash":"a","device":"cpu","libtorch":"1.13.0","pid":1}`+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(run, "config.yaml"), []byte("train:\n  epochs: [\n"), 0o644))
	r := spottrain(t, dir, "analyze", "runs", "--out", "report")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "run "+filepath.Join("runs", "x", "rep-0")+": "+filepath.Join("runs", "x", "rep-0", "config.yaml")+":2: invalid YAML: did not find expected node content",
		errorLine(t, r.stderr))
	assert.NoDirExists(t, filepath.Join(dir, "report"))
}

// TestRunStallWarns: interruptions (SIGTERM every half second of wall time) that come faster than
// the trainer starts (about a second, most of it libtorch's initializers) cut every start before
// its first step. The runner says so, once; stopped, verify and analyze name the stall.
func TestRunStallWarns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	args := append([]string{"run", "--experiment", "lstm-fixed-regular", "--runs-dir", "runs"},
		spotJob("interrupts.every=30m", "interrupts.no_notice_share=0", "interrupts.restart_delay=1s")...)
	p := startSpottrain(t, dir, nil, args...)
	warning := p.readLine("[run] warning: ", 2*time.Minute)
	assert.Regexp(t, `^\[run\] warning: the last \d+ trainer starts were interrupted before their first step`, warning)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	assert.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "stderr: %s", p.stderr.String())
	assert.Equal(t, 1, strings.Count(p.stdout(), "[run] warning: "), "warned once:\n%s", p.stdout())
	assert.NotContains(t, p.stdout(), "\nstep ", "no start reached a step")

	r := spottrain(t, dir, "verify", "runs")
	assert.Equal(t, 1, r.code, "not completed")
	assert.Regexp(t, `(?m)^note: \S+rep-0: stalled: \d+ trainer starts in a row were interrupted before their first step`, r.stdout)
	r = spottrain(t, dir, "analyze", "runs", "--out", "report")
	assert.Regexp(t, `(?m)^warning: \S+rep-0: stalled: \d+ trainer starts in a row`, r.stdout, "stderr: %s", r.stderr)
}

// TestRunMachines: a job of 2 simulated machines trains as a group of 2 ranks, one per machine;
// each interrupt hits one machine and is sent to that machine's rank alone once it is found
// (then not to the launcher the runner started); interrupts hit both machines, the job completes,
// verify finds it sound and analyze bills both machines. Pattern seed 2139 kills machine 1 after
// 67 min of uptime (3.3 s of wall time), gives machine 0 notice 67 min into the next start, and
// waits 355 min (17.7 s) more: the job (about 6 s of training) is hit twice, then completes.
func TestRunMachines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := spottrain(t, dir, append([]string{"run", "--experiment", "lstm-fixed-poisson", "--runs-dir", "runs"},
		spotJob("interrupts.machines=2", "interrupts.rate_per_hour=0.5", "interrupts.seed=2139", "interrupts.time_scale=1200",
			"train.epochs=24", "train.batch_size=256", "distributed.timeout="+groupTimeout.String())...)...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "(seed 2139), 2 machines, 1200 s of spot time per second")
	runDir := filepath.Join(dir, "runs", "lstm-fixed-poisson", "rep-0")
	evs := eventstest.Read(t, runDir)
	children := map[int]bool{}
	for _, c := range eventstest.Of[events.ChildStart](evs) {
		children[c.PID] = true
	}
	hit, toRank := map[int]bool{}, 0
	for _, p := range eventstest.Of[events.InterruptSent](evs) {
		if p.Reason != codes.Schedule {
			continue
		}
		hit[p.Machine] = true
		if !children[p.PID] {
			toRank++
		}
	}
	assert.Equal(t, map[int]bool{0: true, 1: true}, hit, "machines hit")
	assert.Positive(t, toRank, "interrupts sent to a rank's process")
	starts := eventstest.Of[events.RunStart](evs)
	require.NotEmpty(t, starts)
	assert.Equal(t, 2, starts[0].World, "a rank per machine")
	assert.Equal(t, 2, eventstest.Of[events.RunnerStart](evs)[0].Machines)

	r = spottrain(t, dir, "verify", "runs")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "all 1 runs are sound")
	r = spottrain(t, dir, "analyze", "runs", "--out", "report")
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Regexp(t, `(?m)^lstm-fixed-poisson\s+50%\s+1\s+2\s+2\s`, r.stdout, "MACHINES and PROCS")
	assert.Contains(t, r.stdout, "BREAK-EVEN/MACHINE (/H)")
}
