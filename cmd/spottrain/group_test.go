package main

// End-to-end tests of a group of processes (data-parallel training on c10d): the launcher
// (train --nproc-per-node 2) and torchrun start real worker processes that meet over a real
// TCPStore and Gloo's sockets, and the tests send real signals to single workers (SIGTERM, SIGKILL,
// SIGSTOP). What they check is what issue 16 promises: a group trains what one process trains, a
// notice or a lost rank ends every rank with status 75 and the newest committed checkpoint intact,
// nothing hangs, and the run resumes to the weights of an uninterrupted run, bitwise.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/distributed"
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/preemption"
	"spottrain/torch"
	"spottrain/train"
)

var crash2Kills = flag.Int("crash2.kills", 3, "TestCrash2RankCampaign: SIGKILLs of rank 0 before the group may run to completion")

// groupTimeout is the distributed.timeout of the group tests: a lost rank is noticed within it.
const groupTimeout = 3 * time.Second

// groupJob returns the arguments of a small deterministic LSTM job in runDir, the same for one
// process and for a group: a 120-day series, global batches of 32 (about 63 steps an epoch),
// epochs epochs, a log line every step, a checkpoint every 3 steps (3 kept), distributed.timeout
// 3s. It does not name the number of processes.
func groupJob(runDir string, epochs int, extra ...string) []string {
	return exactJob(runDir, epochs, append([]string{"data.lstm.days=120", "train.batch_size=32",
		"distributed.timeout=" + groupTimeout.String()}, extra...)...)
}

// twoRanks is the flag that makes train a launcher of 2 workers.
var twoRanks = []string{"--nproc-per-node", "2"}

// workerPid returns the pid of the worker of rank rank that the launcher p started: the child of
// p whose environment has RANK=rank. It waits for it up to 30 s, then fails the test.
func workerPid(t *testing.T, p *proc, rank int) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if pid, ok := preemption.WorkerRanks(p.cmd.Process.Pid)[rank]; ok {
			return pid
		}
	}
	t.Fatalf("no worker of rank %d among the children of the launcher (pid %d)", rank, p.cmd.Process.Pid)
	return 0
}

// signalWorker sends sig to the worker of rank rank of the launcher p.
func signalWorker(t *testing.T, p *proc, rank int, sig syscall.Signal) {
	t.Helper()
	require.NoError(t, syscall.Kill(workerPid(t, p, rank), sig), "send %v to rank %d", sig, rank)
}

// waitCommitted waits up to timeout for a committed checkpoint of runDir of a step above after,
// and returns its step; none fails the test.
func waitCommitted(t *testing.T, runDir string, after int64, timeout time.Duration) int64 {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		valid, _, err := checkpoint.List(runDir)
		require.NoError(t, err)
		if len(valid) > 0 && valid[len(valid)-1].Manifest.Step > after {
			return valid[len(valid)-1].Manifest.Step
		}
	}
	t.Fatalf("no checkpoint after step %d committed in %s within %v", after, runDir, timeout)
	return 0
}

// stateOf loads the model of ck into a network built from its model.json and returns its state
// tensors.
func stateOf(t *testing.T, ck *checkpoint.Checkpoint) []torch.Tensor {
	t.Helper()
	doc, err := ck.ReadFile(train.SpecFile)
	require.NoError(t, err)
	spec, err := train.ParseModelSpec(doc)
	require.NoError(t, err)
	net, err := spec.Build(torch.CPU)
	require.NoError(t, err)
	defer net.Close()
	state, err := ck.ReadFile(train.ModelFile)
	require.NoError(t, err)
	require.NoError(t, net.LoadState(state))
	tensors, err := net.StateTensors()
	require.NoError(t, err)
	return tensors
}

// assertClose checks that the float32 tensors got and want have the same names and shapes and
// agree elementwise within atol + rtol*|want|; it returns the largest absolute difference.
func assertClose(t *testing.T, want, got []torch.Tensor, atol, rtol float64) float64 {
	t.Helper()
	require.Equal(t, len(want), len(got), "tensors")
	worst := 0.0
	for i := range want {
		w, g := want[i], got[i]
		require.Equal(t, w.Name, g.Name)
		require.Equal(t, w.Shape, g.Shape, w.Name)
		require.Equal(t, torch.F32, w.DType, w.Name)
		require.Equal(t, w.DType, g.DType, w.Name)
		bad := 0
		for k := 0; k < len(w.Data); k += 4 {
			a := float64(math.Float32frombits(binary.LittleEndian.Uint32(w.Data[k:])))
			b := float64(math.Float32frombits(binary.LittleEndian.Uint32(g.Data[k:])))
			d := math.Abs(a - b)
			worst = max(worst, d)
			if !(d <= atol+rtol*math.Abs(a)) && bad < 3 {
				bad++
				t.Errorf("%s[%d]: one process %.9g, 2 ranks %.9g (differ by %.3g)", w.Name, k/4, a, b, d)
			}
		}
	}
	return worst
}

// readMetrics reads metrics.json of runDir.
func readMetrics(t *testing.T, runDir string) metrics {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(runDir, "metrics.json"))
	require.NoError(t, err)
	var m metrics
	require.NoError(t, json.Unmarshal(doc, &m), "%s", doc)
	return m
}

// TestGroupMatchesOneProcess trains one job (dropout off, one thread per process) by one process
// and by a group of 2: each rank of the group takes half of every global batch and the gradients
// are summed, so the two take the same steps, up to the rounding of the sums. The final weights
// agree to float tolerance and so do the test scores; the group's log records its world.
func TestGroupMatchesOneProcess(t *testing.T) {
	t.Parallel()
	args := groupJob("run", 2, "model.lstm.dropout=0")
	one, group := t.TempDir(), t.TempDir()
	r1 := spottrain(t, one, args...)
	require.Equal(t, codes.ExitDone, r1.code, "one process: stdout: %s\nstderr: %s", r1.stdout, r1.stderr)
	r2 := spottrain(t, group, append(args, twoRanks...)...)
	require.Equal(t, codes.ExitDone, r2.code, "2 ranks: stdout: %s\nstderr: %s", r2.stdout, r2.stderr)
	assert.Empty(t, r2.stderr)
	assert.Regexp(t, `(?m)^gradient sums \(gloo, 2 processes, `, r2.stdout)

	runOne, runGroup := filepath.Join(one, "run"), filepath.Join(group, "run")
	m1, m2 := readMetrics(t, runOne), readMetrics(t, runGroup)
	assert.Equal(t, m1.Steps, m2.Steps, "the same number of steps")
	assert.Positive(t, m1.Steps)
	require.NotEmpty(t, m1.Test)
	assert.Equal(t, len(m1.Test), len(m2.Test), "the same test scores: %v, %v", m1.Test, m2.Test)
	for k, want := range m1.Test {
		got, ok := m2.Test[k]
		if assert.True(t, ok, "2 ranks' test scores lack %s", k) {
			assert.InEpsilon(t, want, got, 1e-4, "test %s: one process %v, 2 ranks %v", k, want, got)
		}
	}

	a, b := newest(t, runOne), newest(t, runGroup)
	assert.Equal(t, int64(m1.Steps), a.Manifest.Step, "the final checkpoint")
	assert.Equal(t, a.Manifest.Step, b.Manifest.Step)
	worst := assertClose(t, stateOf(t, a), stateOf(t, b), 1e-6, 1e-4)
	t.Logf("%d steps; the largest difference of a weight: %.3g; test mae_kw: %v (one process), %v (2 ranks)",
		m1.Steps, worst, m1.Test["mae_kw"], m2.Test["mae_kw"])

	evs1, evs2 := eventstest.Read(t, runOne), eventstest.Read(t, runGroup)
	starts1, starts2 := eventstest.Of[events.RunStart](evs1), eventstest.Of[events.RunStart](evs2)
	require.Len(t, starts1, 1)
	require.Len(t, starts2, 1)
	assert.LessOrEqual(t, starts1[0].World, 1, "one process: world 1, or none")
	assert.Equal(t, 2, starts2[0].World, "run_start records the world")
	assert.Empty(t, eventstest.Of[events.GroupStats](evs1), "no group_stats alone")
	stats := eventstest.Of[events.GroupStats](evs2)
	require.Len(t, stats, 1)
	assert.Equal(t, 2, stats[0].World)
	assert.Equal(t, "gloo", stats[0].Backend)
	assert.Positive(t, stats[0].Steps)
	assert.Positive(t, stats[0].Bytes)
	exits := eventstest.Of[events.Exit](evs2)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitDone, exits[0].Code)
	assert.Equal(t, m2.Steps, exits[0].Step)
}

// TestGroupInterruptedResumesExactly interrupts a 2-rank run (dropout on: each rank's RNG state
// is part of the checkpoint) twice: (a) SIGTERM to rank 1 alone, which stops both ranks after the
// same step with one emergency checkpoint (exit 75); (b) SIGKILL to rank 0, the checkpoint writer,
// mid-run: rank 1 names the lost rank and exits 75, and the newest committed checkpoint is intact;
// (c) the restart completes with the weights of an uninterrupted 2-rank run, bitwise.
func TestGroupInterruptedResumesExactly(t *testing.T) {
	t.Parallel()
	args := append(groupJob("run", 1), twoRanks...)
	want := baselineWeights(t, args)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")

	// (a) A notice to one rank.
	p := startSpottrain(t, dir, nil, args...)
	p.readLine("step 20/", time.Minute)
	signalWorker(t, p, 1, syscall.SIGTERM)
	code := p.wait(time.Minute)
	require.Equal(t, codes.ExitPreempted, code, "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	evs := eventstest.Read(t, runDir)
	emergency := eventstest.Of[events.EmergencyCheckpoint](evs)
	require.Len(t, emergency, 1, "one emergency checkpoint")
	s1 := int64(emergency[0].Step)
	assert.GreaterOrEqual(t, s1, int64(20))
	ck := newest(t, runDir)
	assert.Equal(t, s1, ck.Manifest.Step, "the newest checkpoint is the emergency one")
	assert.Equal(t, codes.Emergency, ck.Manifest.Reason)
	_, err := ck.ReadFile("rng.1.pt")
	assert.NoError(t, err, "the checkpoint holds rank 1's RNG state")
	exits := eventstest.Of[events.Exit](evs)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitPreempted, exits[0].Code)
	assert.Equal(t, int(s1), exits[0].Step)
	assert.NotEmpty(t, exits[0].Signal, "rank 0's exit names the notice")
	require.NotNil(t, exits[0].SignalToExitMS, "rank 0's exit has signal_to_exit_ms")
	assert.True(t, *exits[0].SignalToExitMS >= 0 && *exits[0].SignalToExitMS < 10000, "signal_to_exit_ms %d", *exits[0].SignalToExitMS)
	assert.Regexp(t, fmt.Sprintf(`(?m)^\[rank 1\] spottrain: stopped by terminated at step %d after an emergency checkpoint`, s1),
		p.stderr.String(), "rank 1 got the SIGTERM and stopped after the same step")
	assert.Contains(t, p.stderr.String(), "launcher: rank 0: exit status 75\n")
	assert.Contains(t, p.stderr.String(), "launcher: rank 1: exit status 75\n")
	checkAllValid(t, runDir)

	// (b) The checkpoint writer killed mid-run, once this start has committed a checkpoint.
	p = startSpottrain(t, dir, nil, args...)
	line := p.readLine("resumed from step ", time.Minute)
	assert.Regexp(t, fmt.Sprintf(`^resumed from step %d, `, s1), line)
	p.readLine("step ", time.Minute)
	s2 := waitCommitted(t, runDir, s1, time.Minute)
	signalWorker(t, p, 0, syscall.SIGKILL)
	code = p.wait(time.Minute)
	require.Equal(t, codes.ExitPreempted, code, "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Contains(t, p.stderr.String(), "launcher: rank 0: signal: killed\n")
	assert.Regexp(t, `(?m)^\[rank 1\] spottrain: (epoch \d+ batch \d+: )?rank 0 of 2 stopped responding \(`, p.stderr.String(), "rank 1 names the lost rank")
	assert.Contains(t, p.stderr.String(), "launcher: rank 1: exit status 75\n")
	valid, _ := checkAllValid(t, runDir)
	require.NotEmpty(t, valid)
	s3 := valid[len(valid)-1].Manifest.Step
	assert.GreaterOrEqual(t, s3, s2, "the newest committed checkpoint survives")
	_, err = valid[len(valid)-1].ReadFile("rng.1.pt")
	assert.NoError(t, err, "the checkpoint holds rank 1's RNG state")

	// (c) To the end.
	p = startSpottrain(t, dir, nil, args...)
	require.Equal(t, codes.ExitDone, p.wait(time.Minute), "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Equal(t, s3, resumedFrom(t, p.out))
	assert.Equal(t, want, weightsOf(t, newest(t, runDir)), "final weights differ from the uninterrupted 2-rank run's")
	checkAllValid(t, runDir)
	evs = eventstest.Read(t, runDir)
	assert.Equal(t, 3, checkIncarnations(t, evs))
	for _, s := range eventstest.Of[events.RunStart](evs) {
		assert.Equal(t, 2, s.World)
	}
	t.Logf("SIGTERM to rank 1 stopped the group at step %d (rank 0's exit: signal %q, %d ms after it); SIGKILL to rank 0 after the commit of step %d left step %d",
		s1, exits[0].Signal, *exits[0].SignalToExitMS, s2, s3)
}

// TestGroupFrozenRankEndsTheGroup freezes rank 1 (SIGSTOP: a VM that vanished without a word)
// mid-run: rank 0 notices at its next collective, within distributed.timeout, names the frozen
// rank and exits 75; the launcher SIGKILLs the frozen rank distributed.timeout + 10 s after
// rank 0's exit and exits 75. Nothing hangs, and a restart resumes from the newest committed
// checkpoint and completes.
func TestGroupFrozenRankEndsTheGroup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	args := append(groupJob("run", 1), twoRanks...)
	p := startSpottrain(t, dir, nil, args...)
	p.readLine("step 10/", time.Minute)
	signalWorker(t, p, 1, syscall.SIGSTOP)
	frozen := time.Now()
	// Rank 0 leaves within the timeout (plus the heartbeat check that names the missing rank);
	// the launcher's deadline of timeout + Grace starts then.
	limit := 2*groupTimeout + distributed.Grace + 5*time.Second
	code := p.wait(limit)
	took := time.Since(frozen)
	require.Equal(t, codes.ExitPreempted, code, "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	stderr := p.stderr.String()
	assert.Regexp(t, `(?m)^spottrain: (epoch \d+ batch \d+: )?rank 1 of 2 stopped responding \(`, stderr, "rank 0 names the frozen rank")
	assert.Contains(t, stderr, "launcher: rank 0: exit status 75\n")
	assert.Regexp(t, `(?m)^launcher: rank 1 did not exit within 13s of rank 0's end \(exit status 75\): killed it \(SIGKILL\)$`, stderr)
	assert.Less(t, took, limit)
	assert.GreaterOrEqual(t, took, groupTimeout+distributed.Grace, "the launcher waits timeout + grace for the frozen rank")
	t.Logf("the launcher exited %v after the SIGSTOP", took.Round(time.Millisecond))

	valid, _ := checkAllValid(t, runDir)
	require.NotEmpty(t, valid, "a checkpoint was committed before the freeze")
	last := valid[len(valid)-1].Manifest.Step
	evs := eventstest.Read(t, runDir)
	exits := eventstest.Of[events.Exit](evs)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitPreempted, exits[0].Code)
	assert.Contains(t, exits[0].Reason, "rank 1 of 2 stopped responding")

	r := spottrain(t, dir, args...)
	require.Equal(t, codes.ExitDone, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Equal(t, last, resumedFrom(t, strings.Split(r.stdout, "\n")))
	checkAllValid(t, runDir)
}

// TestTorchrunLaunchesWorkers: the binary run by PyTorch's own launcher (torchrun --no_python)
// joins the group torchrun sets up (its agent hosts the store: TORCHELASTIC_USE_AGENT_STORE) and
// trains to the end.
func TestTorchrunLaunchesWorkers(t *testing.T) {
	const torchrun = "/usr/bin/torchrun"
	if _, err := os.Stat(torchrun); err != nil {
		t.Skipf("no %s (Debian's python3-torch): %v", torchrun, err)
	}
	t.Parallel()
	dir := t.TempDir()
	// Debian's torchrun 1.13 spells its flags with underscores (--nproc_per_node, --no_python); under
	// Python 3.11 its default redirects fail, hence -r 1 -t 1 (rank 1's output teed, prefixed).
	args := append([]string{"--standalone", "--nproc_per_node", "2", "-r", "1", "-t", "1", "--no_python", bin},
		groupJob("run", 1)...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, torchrun, args...)
	cmd.Dir = dir
	// torchrun and its workers in a process group of their own, all killed if it hangs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "torchrun %s (ctx: %v):\n%s", strings.Join(args, " "), ctx.Err(), out)
	assert.Regexp(t, `(?m)^\[default0\]:run dir: run$`, string(out))
	evs := eventstest.Read(t, filepath.Join(dir, "run"))
	starts := eventstest.Of[events.RunStart](evs)
	require.Len(t, starts, 1)
	assert.Equal(t, 2, starts[0].World)
	exits := eventstest.Of[events.Exit](evs)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitDone, exits[0].Code)
	stats := eventstest.Of[events.GroupStats](evs)
	require.Len(t, stats, 1)
	assert.Equal(t, 2, stats[0].World)
}

var lostRankRE = regexp.MustCompile(`(?m)^\[rank 1\] spottrain: (epoch \d+ batch \d+: )?rank 0 of 2 stopped responding \(`)

// TestCrash2RankCampaign is the crash campaign of a group of 2: it SIGKILLs rank 0 (the writer of
// the checkpoints) at random instants of its training, which are mostly inside a checkpoint's
// persist (slowed down here), and restarts the group after each kill. After every kill, rank 1
// names the lost rank, the group exits 75, and every checkpoint of the run dir is valid or a
// leftover skipped as invalid with a reason; every start resumes from the newest committed
// checkpoint, and the run ends with the weights of the uninterrupted 2-rank run, bitwise.
func TestCrash2RankCampaign(t *testing.T) {
	t.Parallel()
	kills := *crash2Kills
	args := append(groupJob("run", 1), twoRanks...)
	want := baselineWeights(t, args)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	rng := rand.New(rand.NewPCG(*crashSeed, 0x2a))
	var (
		last    int64 = -1
		starts  int
		skipped = map[string]bool{} // the warnings of skipped leftovers
		c       = newCampaign()
	)
	began := time.Now()
	for killed := 0; ; {
		starts++
		var env []string
		if killed < kills {
			env = writeDelayEnv(20 * time.Millisecond)
		}
		p := startSpottrain(t, dir, env, args...)
		if killed < kills {
			before := leftovers(t, runDir)
			p.readLine("step ", time.Minute)
			pid := workerPid(t, p, 0)
			if killed == 1 {
				// Aimed at a persist: as soon as a checkpoint write of this start is seen (a
				// new .tmp- directory).
				waitNewTmp(t, runDir, before, 30*time.Second)
				require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			} else if killed == 2 {
				// Aimed at the training after a commit of this start (and at the retention
				// that follows it).
				waitCommitted(t, runDir, last, time.Minute)
				if !p.read(func(string) bool { return false }, time.Now().Add(time.Duration(rng.Int64N(int64(100*time.Millisecond))))) && !p.eof {
					require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
				}
			} else {
				// Half the others come within the first 100 ms of training (the first
				// checkpoint of the start), the others up to 600 ms into it.
				delay := time.Duration(rng.Int64N(int64(100 * time.Millisecond)))
				if rng.IntN(2) == 1 {
					delay = 100*time.Millisecond + time.Duration(rng.Int64N(int64(500*time.Millisecond)))
				}
				if !p.read(func(string) bool { return false }, time.Now().Add(delay)) && !p.eof {
					require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
				}
			}
		}
		code := p.wait(time.Minute)
		from := resumedFrom(t, p.out)
		if last >= 0 {
			require.Equal(t, last, from, "start %d: the newest committed checkpoint is of step %d:\n%s", starts, last, p.tail(10))
		} else {
			require.Equal(t, int64(-1), from, "start %d resumed, but no checkpoint was committed", starts)
		}
		for _, l := range p.out {
			if m := skippedRE.FindStringSubmatch(l); m != nil {
				require.True(t, strings.HasPrefix(filepath.Base(m[1]), "."), "start %d skipped a committed checkpoint: %s", starts, l)
				require.NotEmpty(t, m[2], "a reason")
				skipped[l] = true
			}
		}
		if code == codes.ExitDone {
			break
		}
		require.Less(t, killed, kills, "start %d without a kill: exit status %d:\n%s\nstderr: %s", starts, code, p.tail(10), p.stderr.String())
		require.Equal(t, codes.ExitPreempted, code, "start %d: stderr: %s", starts, p.stderr.String())
		require.Contains(t, p.stderr.String(), "launcher: rank 0: signal: killed\n")
		require.Regexp(t, lostRankRE, p.stderr.String(), "rank 1 names the lost rank")
		killed++
		last = c.afterKill(t, runDir, killed, last)
	}
	took := time.Since(began)
	if kills >= 2 {
		assert.Positive(t, c.landed["inside a checkpoint write"], "no kill landed inside a checkpoint write")
	}
	assert.Equal(t, want, weightsOf(t, newest(t, runDir)), "final weights after %d kills differ from the uninterrupted run's", kills)
	checkAllValid(t, runDir)
	evs := eventstest.Read(t, runDir)
	end, ok := evs[len(evs)-1].Payload.(events.Exit)
	require.True(t, ok, "the last event is an exit")
	assert.Equal(t, codes.ExitDone, end.Code)
	t.Logf("%d kills of rank 0, %d starts, %s; kills landed: %v; leftovers: %d .tmp-, %d .del-; skipped: %q",
		kills, starts, took.Round(time.Millisecond), c.landed, c.tmpLeft, c.delLeft, slices.Sorted(maps.Keys(skipped)))
}

// leftovers returns the names of the leftovers of interrupted operations in runDir (names
// starting with a dot).
func leftovers(t *testing.T, runDir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	entries, err := os.ReadDir(runDir)
	if errors.Is(err, fs.ErrNotExist) {
		return out
	}
	require.NoError(t, err)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			out[e.Name()] = true
		}
	}
	return out
}

// waitNewTmp waits up to timeout for a checkpoint write in runDir that is not among before: a
// .tmp- directory; none fails the test.
func waitNewTmp(t *testing.T, runDir string, before map[string]bool, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		for name := range leftovers(t, runDir) {
			if strings.HasPrefix(name, ".tmp-") && !before[name] {
				return
			}
		}
	}
	t.Fatalf("no checkpoint write began in %s within %v", runDir, timeout)
}
