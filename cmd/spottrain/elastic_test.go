package main

// The elastic resume of issue 17: a checkpoint made by W processes resumes on W' (2→1, 1→4,
// 4→2), the global batch stays the same, and the global order of samples goes on from the global
// position. The test reads the samples every process trained on (SPOTTRAIN_TEST_SAMPLES) and
// checks them against an uninterrupted run of one process, step by step.

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
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
	"spottrain/train"
)

// traced is what the samples files of a run say: for each step, each size of group that trained
// it (more than one when a group shrank and went back to a checkpoint) and the shares of its ranks.
type traced map[int]map[int]*tracedStep

type tracedStep struct {
	world  int
	shares map[int][]int // by rank
}

// complete reports whether every rank's share was recorded.
func (s *tracedStep) complete() bool { return len(s.shares) == s.world }

// global returns the step's global batch: the ranks' shares in rank order.
func (s *tracedStep) global() []int {
	var out []int
	for r := range s.world {
		out = append(out, s.shares[r]...)
	}
	return out
}

// only returns the one way step was trained; none or several fail the test.
func (tr traced) only(t *testing.T, step int) *tracedStep {
	t.Helper()
	require.Len(t, tr[step], 1, "step %d: trained by groups of one size only", step)
	for _, s := range tr[step] {
		return s
	}
	return nil
}

// readSamples reads the samples files of dir (SPOTTRAIN_TEST_SAMPLES: see testhooks.go). A rank
// that trained a step twice in groups of the same size fails the test: only a group that changed
// size goes back to a checkpoint without a restart.
func readSamples(t *testing.T, dir string) traced {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.samples"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no samples files in %s", dir)
	out := traced{}
	for _, name := range files {
		f, err := os.Open(name)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			require.Len(t, fields, 4, "%s: %q", name, sc.Text())
			world, rank, step := atoi(t, fields[0]), atoi(t, fields[1]), atoi(t, fields[2])
			var idx []int
			for _, v := range strings.Split(fields[3], ",") {
				idx = append(idx, atoi(t, v))
			}
			if out[step] == nil {
				out[step] = map[int]*tracedStep{}
			}
			s := out[step][world]
			if s == nil {
				s = &tracedStep{world: world, shares: map[int][]int{}}
				out[step][world] = s
			}
			_, twice := s.shares[rank]
			require.False(t, twice, "step %d trained twice by rank %d of %d", step, rank, world)
			s.shares[rank] = idx
		}
		require.NoError(t, sc.Err())
		f.Close()
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

// TestElasticResumeKeepsTheGlobalOrder trains one job (dropout off) by one process uninterrupted,
// and again as a group that changes size at each resume: 2 ranks, a notice; 1 process, a notice;
// 4 ranks, a notice; 3 ranks refused (the global batch of 32 does not divide), the checkpoints
// untouched; 2 ranks to the end. Every step of the resized run trains the global batch that the
// same step of the uninterrupted run trained, each rank an equal contiguous share of it, and the
// final weights agree to float tolerance (the gradient sums round differently in groups of
// different sizes).
func TestElasticResumeKeepsTheGlobalOrder(t *testing.T) {
	t.Parallel()
	args := groupJob("run", 1, "model.lstm.dropout=0", "threads=1")
	refDir, dir := t.TempDir(), t.TempDir()
	refSamples, samples := t.TempDir(), t.TempDir()
	ref := startSpottrain(t, refDir, []string{"SPOTTRAIN_TEST_SAMPLES=" + refSamples}, args...)
	require.Equal(t, codes.ExitDone, ref.wait(2*time.Minute), "reference: stdout:\n%s\nstderr: %s", ref.tail(10), ref.stderr.String())
	want := readSamples(t, refSamples)
	total := len(want)
	require.Greater(t, total, 40, "steps of the reference run")

	env := []string{"SPOTTRAIN_TEST_SAMPLES=" + samples}
	runDir := filepath.Join(dir, "run")
	var stops []int
	for i, phase := range []struct {
		procs, until int // stop with a notice once rank 0 logged step until
	}{{2, 12}, {1, 24}, {4, 36}} {
		a := append(slices.Clone(args), "--nproc-per-node", strconv.Itoa(phase.procs))
		p := startSpottrain(t, dir, env, a...)
		p.readLine("step "+strconv.Itoa(phase.until)+"/", time.Minute)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "phase %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
		stop := int(newest(t, runDir).Manifest.Step)
		if i > 0 {
			assert.Equal(t, int64(stops[i-1]), resumedFrom(t, p.out), "phase %d resumes where the last stopped", i)
		}
		stops = append(stops, stop)
	}

	before := leftovers(t, runDir)
	r := spottrain(t, dir, append(slices.Clone(args), "--nproc-per-node", "3")...)
	assert.Equal(t, codes.ExitBadInput, r.code, "3 ranks: stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Contains(t, r.stderr, "train.batch_size: 32 is not divisible by distributed.nproc_per_node 3")
	assert.Equal(t, before, leftovers(t, runDir), "a refused resume touches nothing")
	assert.Equal(t, int64(stops[2]), newest(t, runDir).Manifest.Step)

	p := startSpottrain(t, dir, env, append(slices.Clone(args), twoRanks...)...)
	require.Equal(t, codes.ExitDone, p.wait(2*time.Minute), "last phase: stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Equal(t, int64(stops[2]), resumedFrom(t, p.out))

	got := readSamples(t, samples)
	require.Len(t, got, total, "every step trained once")
	worlds := map[int]int{}
	for step := 1; step <= total; step++ {
		g, w := got.only(t, step), want.only(t, step)
		require.True(t, g.complete(), "step %d: shares of %d ranks recorded, of %d", step, len(g.shares), g.world)
		require.Equal(t, w.global(), g.global(), "step %d: the global batch of the resized run differs from the uninterrupted one's (world %d)", step, g.world)
		for r := range g.world {
			lo, hi := train.Share(len(w.global()), r, g.world)
			assert.Len(t, g.shares[r], hi-lo, "step %d: rank %d of %d trains its share", step, r, g.world)
		}
		worlds[g.world]++
	}
	assert.Equal(t, stops[0], worlds[2]-(total-stops[2]), "steps by 2 ranks: the first phase and the last")
	assert.Equal(t, stops[1]-stops[0], worlds[1], "steps by 1 process")
	assert.Equal(t, stops[2]-stops[1], worlds[4], "steps by 4 ranks")

	worst := assertClose(t, stateOf(t, newest(t, filepath.Join(refDir, "run"))), stateOf(t, newest(t, runDir)), 1e-5, 1e-3)
	evs := eventstest.Read(t, runDir)
	var sizes []int
	for _, s := range eventstest.Of[events.RunStart](evs) {
		sizes = append(sizes, max(s.World, 1))
	}
	assert.Equal(t, []int{2, 1, 4, 2}, sizes, "run_start's world in each incarnation (the refused one opens nothing)")
	checkAllValid(t, runDir)
	t.Logf("%d steps: 2 ranks to step %d, 1 process to %d, 4 ranks to %d, 2 ranks to the end; largest weight difference to the uninterrupted run %.3g",
		total, stops[0], stops[1], stops[2], worst)
}

// elasticJob is the job of TestElasticNodesShrinkAndGrow: groupJob's LSTM, 2 epochs, dropout off,
// an elastic group of 2 machines of one worker each (distributed.min_nodes 1), every rank's
// samples traced to samples.
func elasticJob(runDir string) []string {
	return groupJob(runDir, 2, "model.lstm.dropout=0", "distributed.min_nodes=1", "distributed.timeout=8s", "preemption.notice=none")
}

// startNode starts node's launcher of the elastic job of the machines m, in dir, with env.
func startNode(t *testing.T, m machines, dir string, env []string, node int, runDir string) *proc {
	t.Helper()
	args := append(elasticJob(runDir), "--nnodes", "2", "--node-rank", strconv.Itoa(node), "--master-addr", m.masterAddr,
		"--master-port", strconv.Itoa(m.masterPort), "--nproc-per-node", "1")
	return startCommand(t, dir, env, append(append(slices.Clone(m.prefix[node]), bin), args...)...)
}

// TestElasticNodesShrinkAndGrow is issue 17's going on without a restart: a group of two machines
// (network namespaces where possible) loses machine 1 (SIGKILL of its launcher, whose worker dies
// with it). Machine 0 does not exit: it forms a group of one from the newest committed checkpoint
// within seconds and trains on. Machine 1 started again asks to join; the group takes it in at its
// next checkpoint, losing no step, and the two complete the run. Every step's global batch is the
// one an uninterrupted run of one process trained (the steps redone after the loss included), the
// final weights agree with that run's to float tolerance, and verify finds the run sound.
func TestElasticNodesShrinkAndGrow(t *testing.T) {
	m := newMachines(t, 2)
	refDir, dir := t.TempDir(), t.TempDir()
	refSamples, samples := t.TempDir(), t.TempDir()
	ref := startSpottrain(t, refDir, []string{"SPOTTRAIN_TEST_SAMPLES=" + refSamples}, elasticJob("run")...)
	require.Equal(t, codes.ExitDone, ref.wait(2*time.Minute), "reference: stdout:\n%s\nstderr: %s", ref.tail(10), ref.stderr.String())
	want := readSamples(t, refSamples)

	runDir := filepath.Join(dir, "run0")
	env := append(pauseAt("step", 80*time.Millisecond), "SPOTTRAIN_TEST_SAMPLES="+samples)
	p0 := startNode(t, m, dir, env, 0, "run0")
	p1 := startNode(t, m, dir, env, 1, "run1")
	p0.readLine("test hook: pausing in step", time.Minute)
	waitCommitted(t, runDir, 8, time.Minute)
	killed := time.Now()
	require.NoError(t, p1.cmd.Process.Kill())
	p1.wait(time.Minute)
	shrunk := p0.readLine("regrouped: 2 → 1 ranks ", time.Minute)
	lost := time.Since(killed)
	p1 = startNode(t, m, dir, env, 1, "run1")
	p0.readLine("regrouped: 1 → 2 ranks ", time.Minute)
	c0, c1 := p0.wait(2*time.Minute), p1.wait(2*time.Minute)
	require.Equal(t, codes.ExitDone, c0, "node 0: stdout:\n%s\nstderr: %s", p0.tail(10), p0.stderr.String())
	require.Equal(t, codes.ExitDone, c1, "node 1: stdout:\n%s\nstderr: %s", p1.tail(10), p1.stderr.String())

	evs := eventstest.Read(t, runDir)
	require.Len(t, eventstest.Of[events.RunStart](evs), 1, "node 0 never restarted")
	rg := eventstest.Of[events.Regroup](evs)
	require.Len(t, rg, 2)
	assert.Equal(t, events.Regroup{Generation: 1, FromWorld: 2, ToWorld: 1, Lost: []int{1}}, events.Regroup{
		Generation: rg[0].Generation, FromWorld: rg[0].FromWorld, ToWorld: rg[0].ToWorld, Lost: rg[0].Lost, Joined: rg[0].Joined})
	assert.LessOrEqual(t, rg[0].Step, rg[0].AtStep, "a shrink goes back to the newest checkpoint")
	assert.Equal(t, events.Regroup{Generation: 2, FromWorld: 1, ToWorld: 2, Joined: []int{1}}, events.Regroup{
		Generation: rg[1].Generation, FromWorld: rg[1].FromWorld, ToWorld: rg[1].ToWorld, Lost: rg[1].Lost, Joined: rg[1].Joined})
	assert.Equal(t, rg[1].AtStep, rg[1].Step, "growing loses no step")
	assert.Less(t, lost, 8*time.Second+15*time.Second, "the survivor went on within distributed.timeout and a margin")

	got := readSamples(t, samples)
	require.Len(t, got, len(want), "every step trained")
	for step := 1; step <= len(want); step++ {
		w := want.only(t, step).global()
		done := false
		for world, g := range got[step] {
			if !g.complete() { // the step the lost machine's worker died in
				continue
			}
			done = true
			assert.Equal(t, w, g.global(), "step %d, by %d ranks: not the uninterrupted run's global batch", step, world)
		}
		assert.True(t, done, "step %d: no group recorded every share of it", step)
	}
	worst := assertClose(t, stateOf(t, newest(t, filepath.Join(refDir, "run"))), stateOf(t, newest(t, runDir)), 1e-5, 1e-3)
	r := spottrain(t, dir, "verify", "run0")
	assert.Equal(t, 0, r.code, "verify: %s%s", r.stdout, r.stderr)
	assert.Contains(t, r.stdout, "all 1 runs are sound")
	t.Logf("%s\nkill → the survivor training again: %s (regroup %.0f ms, %d steps redone); grown back at step %d in %.0f ms; largest weight difference %.3g",
		shrunk, lost.Round(time.Millisecond), rg[0].TookMS, rg[0].AtStep-rg[0].Step, rg[1].Step, rg[1].TookMS, worst)
}
