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

// traced is what the samples files of a run say: for each step, the world that trained it and
// the share of each of its ranks.
type traced map[int]*tracedStep

type tracedStep struct {
	world  int
	shares map[int][]int // by rank
}

// global returns the step's global batch: the ranks' shares in rank order.
func (s *tracedStep) global() []int {
	var out []int
	for r := range s.world {
		out = append(out, s.shares[r]...)
	}
	return out
}

// readSamples reads the samples files of dir (SPOTTRAIN_TEST_SAMPLES: see testhooks.go). A step trained twice (by two
// incarnations, or two ranks of the same place) fails the test: the interruptions here are
// notices, after which no step is done again.
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
			s := out[step]
			if s == nil {
				s = &tracedStep{world: world, shares: map[int][]int{}}
				out[step] = s
			}
			require.Equal(t, s.world, world, "step %d trained by groups of %d and %d", step, s.world, world)
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
		g, w := got[step], want[step]
		require.NotNil(t, g, "step %d was not trained", step)
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
