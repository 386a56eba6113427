package main

// Reliability tests of the real binary: SIGKILL at random instants (inside checkpoint writes most
// of all), SIGTERM preemptions, signals during the emergency checkpoint, corrupt checkpoints, two
// trainers on one run dir, a changed config. The point of each is what a spot machine relies on:
// no committed checkpoint is ever unreadable, a restart resumes from the newest one, and the
// weights at the end are bitwise those of a run that was never interrupted.

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/internal/testutil"
	"spottrain/train"
)

var (
	crashKills = flag.Int("crash.kills", 50, "TestCrashCampaign: SIGKILLs of the trainer before it may run to completion")
	crashSeed  = flag.Uint64("crash.seed", 1, "TestCrashCampaign: seed of the kill delays")
)

// writeDelayEnv slows every checkpoint write chunk of the binary down by d (a tiny model's files
// are one chunk each: a checkpoint is 5 writes), so that kills and signals land inside writes.
// The binary reads it only because TestMain builds it with -tags testhooks (testhooks.go).
func writeDelayEnv(d time.Duration) []string {
	return []string{"SPOTTRAIN_TEST_CKPT_WRITE_DELAY=" + d.String()}
}

// exactJob returns the arguments of a tiny deterministic demo job in runDir: epochs epochs of 30
// steps (475 training windows, batches of 16), a log line every step, a checkpoint every 3 steps,
// 3 kept.
func exactJob(runDir string, epochs int, extra ...string) []string {
	args := append(lstmTrain(), tiny(runDir)...)
	for _, kv := range append([]string{
		"train.epochs=" + strconv.Itoa(epochs), "train.batch_size=16", "train.log_every=1", "seed=11",
		"checkpoint.every_steps=3", "checkpoint.every_seconds=0", "checkpoint.keep=3",
	}, extra...) {
		args = append(args, "--set", kv)
	}
	return args
}

var (
	stepDirRE    = regexp.MustCompile(`^step-\d{8,}$`)
	resumedRE    = regexp.MustCompile(`^resumed from step (\d+), epoch \d+, batch \d+ \((.+)\)$`)
	checkpointRE = regexp.MustCompile(`^terminated received: checkpointing at step (\d+)$`)
	skippedRE    = regexp.MustCompile(`^warning: skipped invalid checkpoint (\S+): (.*)$`)
)

// weightsOf loads the model of ck into a network built from its model.json and returns the
// SHA-256 of its state tensors (names and data): equal digests, bitwise equal weights. It fails
// the test if the checkpoint cannot be loaded into the network.
func weightsOf(t *testing.T, ck *checkpoint.Checkpoint) string {
	t.Helper()
	digest, err := train.WeightsDigest(ck)
	require.NoError(t, err, "%s does not load into its network", ck.Dir)
	return digest
}

// newest returns the newest valid checkpoint of runDir, failing the test if there is none.
func newest(t *testing.T, runDir string) *checkpoint.Checkpoint {
	t.Helper()
	valid, _, err := checkpoint.List(runDir)
	require.NoError(t, err)
	require.NotEmpty(t, valid, "no valid checkpoint in %s", runDir)
	return &valid[len(valid)-1]
}

// checkAllValid checks that every directory of runDir named like a checkpoint is one, that it
// loads and that its model loads into a network; leftovers of interrupted operations (names
// starting with a dot) are allowed. It returns the valid checkpoints, oldest first, and the
// leftovers.
func checkAllValid(t *testing.T, runDir string) ([]checkpoint.Checkpoint, []checkpoint.Invalid) {
	t.Helper()
	valid, invalid, err := checkpoint.List(runDir)
	require.NoError(t, err)
	for _, inv := range invalid {
		name := filepath.Base(inv.Dir)
		require.False(t, stepDirRE.MatchString(name), "committed checkpoint %s is invalid: %s", inv.Dir, inv.Reason)
		require.True(t, strings.HasPrefix(name, "."), "%s listed as a leftover: %s", inv.Dir, inv.Reason)
	}
	for i := range valid {
		ck := &valid[i]
		require.Regexp(t, stepDirRE, filepath.Base(ck.Dir), "listed as a checkpoint")
		_, err := checkpoint.Load(ck.Dir)
		require.NoError(t, err)
		weightsOf(t, ck)
	}
	return valid, invalid
}

// checkIncarnations checks the shape of a log that several processes wrote in turn: the first
// event of each incarnation is its run_start, incarnations count up from 1 without a gap, and
// there is one run_start per incarnation. It returns the number of incarnations.
func checkIncarnations(t *testing.T, evs []events.Event) int {
	t.Helper()
	inc := 0
	for i, e := range evs {
		switch {
		case e.Incarnation == inc+1:
			require.IsType(t, events.RunStart{}, e.Payload, "event %d: the first of incarnation %d", i+1, e.Incarnation)
			inc++
		case e.Incarnation == inc:
			require.NotEqual(t, "run_start", e.Type, "event %d: a second run_start in incarnation %d", i+1, inc)
		default:
			t.Fatalf("event %d (%s): incarnation %d after %d", i+1, e.Type, e.Incarnation, inc)
		}
	}
	return inc
}

// resumedFrom returns the step of the "resumed from step N" line of stdout, or -1 if there is none;
// a second such line fails the test.
func resumedFrom(t *testing.T, out []string) int64 {
	t.Helper()
	step := int64(-1)
	for _, l := range out {
		if m := resumedRE.FindStringSubmatch(l); m != nil {
			require.Equal(t, int64(-1), step, "two resumed lines:\n%s", strings.Join(out, "\n"))
			step, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	return step
}

var baselines struct {
	sync.Mutex
	digest map[string]string // by the job's arguments
}

// baselineWeights runs the job args (whose run dir is "run") to completion, without interruption,
// and returns the digest of its final weights. Tests that run the same job share one run.
func baselineWeights(t *testing.T, args []string) string {
	t.Helper()
	key := strings.Join(args, "\x00")
	baselines.Lock()
	defer baselines.Unlock()
	if d, ok := baselines.digest[key]; ok {
		return d
	}
	dir := t.TempDir()
	r := spottrain(t, dir, args...)
	require.Equal(t, 0, r.code, "baseline run: stdout: %s\nstderr: %s", r.stdout, r.stderr)
	d := weightsOf(t, newest(t, filepath.Join(dir, "run")))
	if baselines.digest == nil {
		baselines.digest = map[string]string{}
	}
	baselines.digest[key] = d
	return d
}

// TestCrashCampaign kills the trainer with SIGKILL again and again, at random instants from its
// start (during startup, before its first checkpoint, inside checkpoint writes, which take most of
// its time here), and restarts it each time, until -crash.kills kills are done; then lets it
// finish. After every kill, every checkpoint of the run dir must be valid and loadable, and the
// next start must resume from the newest; at the end the weights must be bitwise those of an
// uninterrupted run.
func TestCrashCampaign(t *testing.T) {
	t.Parallel()
	kills := *crashKills
	const writeDelay = 20 * time.Millisecond
	epochs := 4 + kills/4 // 30 steps each; the kills take the run about half way
	root := t.TempDir()
	args := exactJob("run", epochs)

	want, total, startup := crashBaseline(t, filepath.Join(root, "baseline"), args)

	dir := filepath.Join(root, "campaign")
	require.NoError(t, os.Mkdir(dir, 0o755))
	runDir := filepath.Join(dir, "run")
	rng := rand.New(rand.NewPCG(*crashSeed, 0x5eed))
	var (
		last    int64 = -1 // the newest committed step; -1: none
		starts  int
		killed  int
		printed int                // starts that printed a line
		aimed   = map[string]int{} // what the kills' delays aimed at
		killsAt int64              // the newest committed step when the kills were done
		c       = newCampaign()
	)
	began := time.Now()
	for {
		starts++
		env := writeDelayEnv(writeDelay)
		var k kill
		if killed == kills {
			killsAt = last
		}
		if killed < kills {
			k = nextKill(rng, killed, startup, total-last < total/4)
			aimed[k.aim]++
		} else {
			env = nil // the kills are done: finish at full speed
		}
		p := startSpottrain(t, dir, env, args...)
		if killed < kills {
			at := p.start
			if k.afterStep && p.read(func(l string) bool { return strings.HasPrefix(l, "step ") }, at.Add(time.Minute)) {
				at = time.Now()
			}
			if !p.read(func(string) bool { return false }, at.Add(k.delay)) && !p.eof {
				p.cmd.Process.Signal(syscall.SIGKILL)
			}
		}
		code := p.wait(2 * time.Minute)
		if len(p.out) > 0 {
			printed++
			startup = min(startup, p.first.Sub(p.start))
		}

		// It resumed from the newest checkpoint the previous kill left, and never saw a
		// committed checkpoint as invalid.
		from := resumedFrom(t, p.out)
		if last < 0 {
			require.Equal(t, int64(-1), from, "start %d resumed, but no checkpoint was committed:\n%s", starts, p.tail(20))
		} else if from >= 0 || slices.ContainsFunc(p.out, func(l string) bool { return strings.HasPrefix(l, "lstm-solar: ") }) {
			require.Equal(t, last, from, "start %d: newest committed checkpoint step %d, resumed from %d:\n%s", starts, last, from, p.tail(20))
		}
		for _, l := range p.out {
			if m := skippedRE.FindStringSubmatch(l); m != nil {
				require.True(t, strings.HasPrefix(filepath.Base(m[1]), "."), "start %d skipped a committed checkpoint: %s", starts, l)
			}
		}
		if code == 0 {
			break
		}
		require.True(t, p.killed(), "start %d: exit status %d, not our SIGKILL:\n%s\nstderr: %s", starts, code, p.tail(10), p.stderr.String())
		killed++
		last = c.afterKill(t, runDir, killed, last)
	}
	took := time.Since(began)

	assert.GreaterOrEqual(t, killed, kills)
	got := weightsOf(t, newest(t, runDir))
	assert.Equal(t, want, got, "final weights after %d kills differ from the uninterrupted run's", killed)
	checkAllValid(t, runDir)
	n := checkCompleted(t, runDir, int(total), epochs)
	assert.GreaterOrEqual(t, n, printed, "a run_start for every start that printed a line")
	assert.LessOrEqual(t, n, starts)

	t.Logf("%d kills, %d starts, %d incarnations in the log, %s; the binary starts in %v; the kills got the run to step %d of %d",
		killed, starts, n, took.Round(time.Millisecond), startup.Round(time.Millisecond), killsAt, total)
	t.Logf("kills aimed at: %v", aimed)
	t.Logf("kills landed: %v", c.landed)
	t.Logf("kills before the first committed checkpoint: %d; leaving a .tmp- dir: %d, a .del- dir: %d; at most %d checkpoints at once",
		c.noCkpt, c.tmpLeft, c.delLeft, c.maxValid)
	if kills >= 20 {
		assert.Positive(t, c.landed["inside a checkpoint write"], "no kill landed inside a checkpoint write")
		assert.Positive(t, c.tmpLeft, "no kill left a partial checkpoint")
		assert.Positive(t, c.noCkpt, "no kill before the first checkpoint")
	}
}

// crashBaseline runs the job args in dir uninterrupted, at full speed, and returns its final
// weights, its length in steps, and how long the binary took to start (to its first line).
func crashBaseline(t *testing.T, dir string, args []string) (weights string, total int64, startup time.Duration) {
	t.Helper()
	require.NoError(t, os.Mkdir(dir, 0o755))
	base := startSpottrain(t, dir, nil, args...)
	header := base.readLine("lstm-solar: ", time.Minute)
	startup = base.first.Sub(base.start)
	require.Equal(t, 0, base.wait(2*time.Minute), "stderr: %s", base.stderr.String())
	m := headerRE.FindStringSubmatch(header)
	require.NotNil(t, m, header)
	total, _ = strconv.ParseInt(m[2], 10, 64)
	return weightsOf(t, newest(t, filepath.Join(dir, "run"))), total, startup
}

// campaign is what the kills of TestCrashCampaign did.
type campaign struct {
	inc      int             // incarnations in the event log
	landed   map[string]int  // where the kills landed
	noCkpt   int             // kills while the run had no committed checkpoint yet
	tmpLeft  int             // kills that left a new .tmp- directory (inside a write)
	delLeft  int             // kills that left a new .del- directory (inside retention)
	seen     map[string]bool // leftovers seen after earlier kills
	maxValid int
}

func newCampaign() *campaign { return &campaign{landed: map[string]int{}, seen: map[string]bool{}} }

// afterKill checks runDir after kill number killed, last being the newest committed step before
// it (-1: none), and records where the kill landed. It returns the newest committed step.
func (c *campaign) afterKill(t *testing.T, runDir string, killed int, last int64) int64 {
	t.Helper()
	// Where it landed: the log tells whether it got as far as its run_start, and whether a
	// checkpoint it began was committed.
	evs := eventstest.Read(t, runDir)
	n := checkIncarnations(t, evs)
	switch {
	case n == c.inc:
		c.landed["startup, before the event log"]++
	case writing(evs, n):
		c.landed["inside a checkpoint write"]++
	default:
		c.landed["training, eval or shutdown, no write in flight"]++
	}
	c.inc = n

	// The guarantee: zero unloadable checkpoints, whatever the instant of the kill.
	valid, leftovers := checkAllValid(t, runDir)
	c.maxValid = max(c.maxValid, len(valid))
	require.LessOrEqual(t, len(valid), 3+1, "retention keeps 3, and a kill may come between a commit and the deletion")
	for _, l := range leftovers {
		name := filepath.Base(l.Dir)
		if !c.seen[name] {
			c.tmpLeft += b2i(strings.HasPrefix(name, ".tmp-"))
			c.delLeft += b2i(strings.HasPrefix(name, ".del-"))
		}
		c.seen[name] = true
	}
	if len(valid) == 0 {
		require.Equal(t, int64(-1), last, "kill %d: the committed checkpoints are gone", killed)
		c.noCkpt++
		return last
	}
	step := valid[len(valid)-1].Manifest.Step
	require.GreaterOrEqual(t, step, last, "kill %d: the newest committed checkpoint went back", killed)
	return step
}

// checkCompleted checks that the run in runDir completed at step total after epochs epochs: its
// log ends with an exit 0 at that step, and metrics.json has every epoch. It returns the number of
// incarnations in the log.
func checkCompleted(t *testing.T, runDir string, total, epochs int) int {
	t.Helper()
	evs := eventstest.Read(t, runDir)
	n := checkIncarnations(t, evs)
	end, ok := evs[len(evs)-1].Payload.(events.Exit)
	require.True(t, ok, "the last event is an exit: %+v", evs[len(evs)-1])
	assert.Equal(t, codes.ExitDone, end.Code)
	assert.Equal(t, total, end.Step)
	doc, err := os.ReadFile(filepath.Join(runDir, "metrics.json"))
	require.NoError(t, err)
	var mj metrics
	require.NoError(t, json.Unmarshal(doc, &mj))
	assert.Equal(t, total, mj.Steps)
	assert.Len(t, mj.Epochs, epochs, "metrics.json has every epoch's evaluation")
	return n
}

// kill is when to kill a start: delay after its start, or after its first step line.
type kill struct {
	delay     time.Duration
	afterStep bool
	aim       string
}

// nextKill draws when to kill the next start, given the kills done so far and how long the
// binary takes to start (to its first line). The first two kills, and a quarter of the others,
// come within 100 ms of the first step of the start: before its first checkpoint is committed
// (its 5 writes sleep 100 ms at least), the run's very first checkpoint for the first kills. Of
// the others, some come during startup, most at any point of a longer stretch of training
// (inside checkpoint writes, mostly, as they take most of the time). Near the end of the job
// (nearEnd), only startup kills, so that the job never finishes before the kills are done.
func nextKill(rng *rand.Rand, done int, startup time.Duration, nearEnd bool) kill {
	uniform := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	p := rng.Float64()
	switch {
	case nearEnd || done >= 2 && p < 0.15:
		return kill{delay: uniform(0, startup), aim: "startup"}
	case done < 2 || p < 0.4:
		return kill{delay: uniform(0, 100*time.Millisecond), afterStep: true, aim: "first checkpoint of the start"}
	default:
		return kill{delay: uniform(startup, startup+800*time.Millisecond), aim: "training"}
	}
}

// writing reports whether incarnation inc of the log began a checkpoint it did not commit.
func writing(evs []events.Event, inc int) bool {
	open := false
	for _, e := range evs {
		if e.Incarnation != inc {
			continue
		}
		switch e.Payload.(type) {
		case events.CheckpointBegin:
			open = true
		case events.CheckpointCommit:
			open = false
		}
	}
	return open
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sigtermJob is the job of the SIGTERM and corruption tests: 6 epochs cut at 178 steps, so that
// step 177 is a checkpoint step (the loop blocks there on the previous write) and a SIGTERM
// sent when it is logged lands in the last step.
func sigtermJob() []string { return exactJob("run", 6, "train.max_steps=178") }

// preempt starts the job args in dir with env, sends SIGTERM once the line "step target/..." is
// out, and checks that the trainer stops as promised: exit status 75, one line on stderr about the
// emergency checkpoint, the last line of stdout naming its step, which is the newest checkpoint,
// an emergency one. If resumed >= 0, the start must resume from that step (else from none). It
// returns the step of the emergency checkpoint.
func preempt(t *testing.T, dir string, env []string, args []string, target int, resumed int64) int64 {
	t.Helper()
	p := startSpottrain(t, dir, env, args...)
	p.readLine(fmt.Sprintf("step %d/", target), time.Minute)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	code := p.wait(time.Minute)
	require.Equal(t, codes.ExitPreempted, code, "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Contains(t, errorLine(t, p.stderr.String()), "emergency checkpoint")
	assert.Equal(t, resumed, resumedFrom(t, p.out))
	m := checkpointRE.FindStringSubmatch(p.out[len(p.out)-1])
	require.NotNil(t, m, "last line of stdout:\n%s", p.tail(5))
	step, _ := strconv.ParseInt(m[1], 10, 64)
	assert.GreaterOrEqual(t, step, int64(target))
	ck := newest(t, filepath.Join(dir, "run"))
	assert.Equal(t, step, ck.Manifest.Step, "the newest checkpoint is the emergency one")
	assert.Equal(t, codes.Emergency, ck.Manifest.Reason)
	assert.Equal(t, checkpoint.DirName(step), filepath.Base(ck.Dir))
	return step
}

// TestSIGTERMResumesExactly preempts a job with SIGTERM three times (early in the first epoch, a
// few epochs on, and in its very last step) and restarts it each time: every start resumes from
// the emergency checkpoint of the previous one, and the final weights are bitwise those of an
// uninterrupted run.
func TestSIGTERMResumesExactly(t *testing.T) {
	t.Parallel()
	args := sigtermJob()
	want := baselineWeights(t, args)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	env := writeDelayEnv(20 * time.Millisecond)

	s1 := preempt(t, dir, env, args, 10, -1)
	s2 := preempt(t, dir, env, args, int(s1)+37, s1) // into the next epoch
	s3 := preempt(t, dir, env, args, 177, s2)        // step 178 is the last
	assert.Equal(t, int64(178), s3, "the SIGTERM sent at step 177 (a checkpoint step) lands in the last step")

	p := startSpottrain(t, dir, env, args...)
	require.Equal(t, 0, p.wait(time.Minute), "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Empty(t, p.stderr.String())
	assert.Equal(t, s3, resumedFrom(t, p.out))
	assert.Contains(t, p.stdout(), "\nepoch 6 done in ", "the last epoch is evaluated after a preemption in its last step")
	assert.Equal(t, want, weightsOf(t, newest(t, runDir)), "final weights differ from the uninterrupted run's")

	doc, err := os.ReadFile(filepath.Join(runDir, "metrics.json"))
	require.NoError(t, err)
	var mj metrics
	require.NoError(t, json.Unmarshal(doc, &mj))
	assert.Equal(t, 178, mj.Steps)
	assert.Len(t, mj.Epochs, 6, "metrics.json has every epoch's evaluation")

	// The log: per preemption a signal_received, an emergency_checkpoint and an exit 75 with the
	// time from the signal to the exit; per restart a resume.
	evs := eventstest.Read(t, runDir)
	assert.Equal(t, 4, checkIncarnations(t, evs))
	steps := []int{int(s1), int(s2), int(s3)}
	var got [3][]int
	for _, e := range eventstest.Of[events.SignalReceived](evs) {
		got[0] = append(got[0], e.Step)
		assert.Equal(t, "terminated", e.Signal)
	}
	for _, e := range eventstest.Of[events.EmergencyCheckpoint](evs) {
		got[1] = append(got[1], e.Step)
	}
	for _, e := range eventstest.Of[events.Resume](evs) {
		got[2] = append(got[2], e.Step)
	}
	assert.Equal(t, steps, got[0], "signal_received steps")
	assert.Equal(t, steps, got[1], "emergency_checkpoint steps")
	assert.Equal(t, steps, got[2], "resume steps")
	exits := eventstest.Of[events.Exit](evs)
	require.Len(t, exits, 4)
	for i, e := range exits[:3] {
		assert.Equal(t, codes.ExitPreempted, e.Code)
		assert.Equal(t, steps[i], e.Step)
		assert.Equal(t, "terminated", e.Signal)
		require.NotNil(t, e.SignalToExitMS, "exit %d has signal_to_exit_ms", i)
		ms := *e.SignalToExitMS
		assert.True(t, ms >= 0 && ms < 2000, "signal_to_exit_ms %d", ms)
	}
	assert.Equal(t, codes.ExitDone, exits[3].Code)
	assert.Equal(t, 178, exits[3].Step)
}

// TestSecondSignalDoesNotAbortSave sends SIGTERM, and once the emergency checkpoint has begun (its
// files take seconds to write here), SIGTERM and SIGINT again: both are reported and ignored, the
// checkpoint is completed and valid, and the exit status is still 75.
func TestSecondSignalDoesNotAbortSave(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	args := exactJob("run", 100000, "checkpoint.every_steps=0")
	p := startSpottrain(t, dir, writeDelayEnv(300*time.Millisecond), args...)
	p.readLine("step ", time.Minute)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	line := p.readLine("terminated received: checkpointing at step ", time.Minute)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGINT))
	again := time.Now()
	require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "stderr: %s", p.stderr.String())
	assert.Equal(t, line, p.out[len(p.out)-1], "nothing after the checkpointing line")

	stderr := strings.Split(strings.TrimSuffix(p.stderr.String(), "\n"), "\n")
	require.Len(t, stderr, 3, "stderr: %s", p.stderr.String())
	assert.ElementsMatch(t, []string{
		"spottrain: terminated received again: finishing the emergency checkpoint first",
		"spottrain: interrupt received again: finishing the emergency checkpoint first",
	}, stderr[:2])
	assert.Contains(t, errorLine(t, stderr[2]+"\n"), "emergency checkpoint")

	step, err := strconv.ParseInt(checkpointRE.FindStringSubmatch(line)[1], 10, 64)
	require.NoError(t, err)
	ck, err := checkpoint.Load(filepath.Join(runDir, checkpoint.DirName(step)))
	require.NoError(t, err, "the emergency checkpoint")
	assert.Equal(t, codes.Emergency, ck.Manifest.Reason)
	weightsOf(t, ck)
	valid, invalid := checkAllValid(t, runDir)
	assert.Len(t, valid, 1)
	assert.Empty(t, invalid, "no leftover")

	// The later signals came while the checkpoint was being written, and started nothing else.
	evs := eventstest.Read(t, runDir)
	require.Len(t, eventstest.Of[events.CheckpointCommit](evs), 1)
	committed := evs[eventstest.Index[events.CheckpointCommit](evs, 0)].Time
	assert.True(t, committed.After(again), "the checkpoint was committed %v after the later signals", committed.Sub(again))
	assert.Len(t, eventstest.Of[events.SignalReceived](evs), 1)
	assert.Len(t, eventstest.Of[events.EmergencyCheckpoint](evs), 1)
	exits := eventstest.Of[events.Exit](evs)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitPreempted, exits[0].Code)
}

// TestCorruptNewestFallsBack damages the newest checkpoint of a preempted run in the ways a disk or
// a person can (or a libtorch that cannot load what its hashes vouch for); the restart reports it, resumes from the previous checkpoint, and still ends with
// the weights of an uninterrupted run.
func TestCorruptNewestFallsBack(t *testing.T) {
	t.Parallel()
	args := sigtermJob()
	want := baselineWeights(t, args)
	src := t.TempDir()
	preempt(t, src, nil, args, 20, -1)
	valid, _ := checkAllValid(t, filepath.Join(src, "run"))
	require.GreaterOrEqual(t, len(valid), 2)
	bad, prev := filepath.Base(valid[len(valid)-1].Dir), valid[len(valid)-2].Manifest.Step

	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, ckDir string)
		reason string // in the warning
	}{
		{"FlippedByte", func(t *testing.T, ckDir string) {
			path := filepath.Join(ckDir, train.ModelFile)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b[len(b)/2] ^= 0x01
			require.NoError(t, os.WriteFile(path, b, 0o644))
		}, "model.pt: sha256 mismatch"},
		{"Truncated", func(t *testing.T, ckDir string) {
			path := filepath.Join(ckDir, train.ModelFile)
			st, err := os.Stat(path)
			require.NoError(t, err)
			require.NoError(t, os.Truncate(path, st.Size()/2))
		}, "model.pt has "},
		{"ModelDeleted", func(t *testing.T, ckDir string) {
			require.NoError(t, os.Remove(filepath.Join(ckDir, train.ModelFile)))
		}, "model.pt is missing"},
		{"ManifestDeleted", func(t *testing.T, ckDir string) {
			require.NoError(t, os.Remove(filepath.Join(ckDir, checkpoint.ManifestName)))
		}, "manifest.json is missing"},
		{"FutureFormat", func(t *testing.T, ckDir string) {
			path := filepath.Join(ckDir, checkpoint.ManifestName)
			doc, err := os.ReadFile(path)
			require.NoError(t, err)
			var m map[string]any
			require.NoError(t, json.Unmarshal(doc, &m))
			m["format_version"] = 99
			doc, err = json.Marshal(m)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, doc, 0o644))
		}, "unsupported format version 99"},
		{"WrongShapes", wrongShapes, "model.pt does not load: torch: load model state: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			runDir := filepath.Join(dir, "run")
			require.NoError(t, os.CopyFS(runDir, os.DirFS(filepath.Join(src, "run"))))
			tt.damage(t, filepath.Join(runDir, bad))

			r := spottrain(t, dir, args...)
			require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Empty(t, r.stderr)
			out := strings.Split(r.stdout, "\n")
			var warnings []string
			for _, l := range out {
				if m := skippedRE.FindStringSubmatch(l); m != nil {
					warnings = append(warnings, l)
					assert.Equal(t, filepath.Join("run", bad), m[1])
					assert.Contains(t, m[2], tt.reason)
				}
			}
			assert.Len(t, warnings, 1, "stdout: %s", r.stdout)
			assert.Equal(t, prev, resumedFrom(t, out), "resumed from the previous checkpoint")
			assert.Equal(t, want, weightsOf(t, newest(t, runDir)), "final weights differ from the uninterrupted run's")
			checkAllValid(t, runDir)

			evs := eventstest.Read(t, runDir)
			inv := eventstest.Of[events.CheckpointInvalid](evs)
			require.Len(t, inv, 1)
			assert.Equal(t, filepath.Join("run", bad), inv[0].Dir)
			assert.Contains(t, inv[0].Reason, tt.reason)
			res := eventstest.Of[events.Resume](evs)
			require.Len(t, res, 1)
			assert.Equal(t, int(prev), res[0].Step)
		})
	}
}

// TestSecondTrainerOnSameRunDir starts a second trainer on the run dir of a running one: it is
// refused before it touches anything, and the first one goes on and stops cleanly.
func TestSecondTrainerOnSameRunDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	testutil.WriteFile(t, filepath.Join(dir, "job.yaml"), "name: twice\n")
	args := append([]string{"train", "--config", "job.yaml"}, exactJob("run", 100000)[len(lstmTrain()):]...)
	first := startSpottrain(t, dir, writeDelayEnv(20*time.Millisecond), args...)
	first.readLine("step ", time.Minute)
	config, err := os.ReadFile(filepath.Join(runDir, "config.yaml"))
	require.NoError(t, err)

	r := spottrain(t, dir, args...)
	assert.NotEqual(t, 0, r.code)
	assert.NotEqual(t, codes.ExitPreempted, r.code)
	assert.Equal(t, fmt.Sprintf("run dir run is in use by another trainer (pid %d)", first.cmd.Process.Pid), errorLine(t, r.stderr))
	assert.Empty(t, r.stdout)

	require.NoError(t, first.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, codes.ExitPreempted, first.wait(time.Minute), "stderr: %s", first.stderr.String())
	valid, invalid := checkAllValid(t, runDir)
	require.NotEmpty(t, valid)
	assert.Empty(t, invalid)
	evs := eventstest.Read(t, runDir)
	assert.Equal(t, 1, checkIncarnations(t, evs), "the second trainer wrote no event")
	exits := eventstest.Of[events.Exit](evs)
	require.Len(t, exits, 1)
	// Every step is saved: by the emergency checkpoint, or by a periodic one of the same step (a
	// notice during the evaluation after a checkpointed step: "step N is checkpointed already").
	newest := valid[len(valid)-1].Manifest
	assert.Equal(t, int64(exits[0].Step), newest.Step)
	if newest.Reason != codes.Emergency {
		assert.Contains(t, first.stdout(), fmt.Sprintf("step %d is checkpointed already", newest.Step))
	}
	after, err := os.ReadFile(filepath.Join(runDir, "config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(config), string(after))
}

// TestConfigChangeRefused restarts a preempted run with another learning rate: refused (status 2,
// naming the run dir and --force) without touching the run dir; with --force it resumes. Both
// commands that train take --force.
func TestConfigChangeRefused(t *testing.T) {
	t.Parallel()
	for _, source := range []string{"file", "experiment"} {
		t.Run(source, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			runDir := filepath.Join(dir, "run")
			args := exactJob("run", 2)
			if source == "file" {
				testutil.WriteFile(t, filepath.Join(dir, "job.yaml"), "name: lr-change\n")
				args = append([]string{"train", "--config", "job.yaml"}, args[len(lstmTrain()):]...)
			}
			step := preempt(t, dir, writeDelayEnv(20*time.Millisecond), args, 5, -1)
			config, err := os.ReadFile(filepath.Join(runDir, "config.yaml"))
			require.NoError(t, err)
			before, _ := checkAllValid(t, runDir)

			changed := append(slices.Clone(args), "--set", "optimizer.lr=5e-4")
			r := spottrain(t, dir, changed...)
			assert.Equal(t, 2, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			msg := errorLine(t, r.stderr)
			assert.Contains(t, msg, "run dir run holds checkpoints of another config")
			assert.Contains(t, msg, "--force")
			assert.NotContains(t, r.stdout, "step ")
			after, err := os.ReadFile(filepath.Join(runDir, "config.yaml"))
			require.NoError(t, err)
			assert.Equal(t, string(config), string(after), "config.yaml unchanged")
			same, _ := checkAllValid(t, runDir)
			assert.Equal(t, before, same, "checkpoints unchanged")

			r = spottrain(t, dir, append(changed, "--force")...)
			require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Empty(t, r.stderr)
			assert.Equal(t, step, resumedFrom(t, strings.Split(r.stdout, "\n")))
			cfg, err := configs.Load(filepath.Join(runDir, "config.yaml"), nil)
			require.NoError(t, err)
			assert.Equal(t, 5e-4, cfg.Optimizer.LR, "config.yaml is the new config")
			var mj metrics
			doc, err := os.ReadFile(filepath.Join(runDir, "metrics.json"))
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(doc, &mj))
			assert.Equal(t, mj.ConfigSHA, newest(t, runDir).Manifest.ConfigHash, "checkpoints after --force carry the new config")
			exits := []int{}
			for _, e := range eventstest.Of[events.Exit](eventstest.Read(t, runDir)) {
				exits = append(exits, e.Code)
			}
			assert.Equal(t, []int{codes.ExitPreempted, codes.ExitBadInput, codes.ExitDone}, exits)
		})
	}
}
