package main

// Tests of what issue 17 promises of a group of several machines when one of them goes wrong: a
// machine killed or frozen, a notice on one of them, a fresh set of machines taking the run up from
// object storage. Each machine is a network namespace with its own working directory (newMachines);
// every node runs one worker of the tiny job nodeJob.

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path"
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
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/internal/gcstest"
)

// nodeTimeout is the distributed.timeout of nodeJob: a frozen machine is noticed within it.
const nodeTimeout = 5 * time.Second

// nodeJob returns the arguments (from train on) of the tiny deterministic job of the tests of
// several machines, in runDir: exactJob's LSTM, 2 epochs of about 20 global batches of 24 (which 2
// or 3 processes share equally), a checkpoint every 3 steps, distributed.timeout nodeTimeout, no
// cloud notices, no dropout (a group then trains what one process trains, to float rounding).
func nodeJob(runDir string, extra ...string) []string {
	return exactJob(runDir, 2, append([]string{"train.batch_size=24", "distributed.timeout=" + nodeTimeout.String(),
		"preemption.notice=none", "model.lstm.dropout=0"}, extra...)...)
}

// nodeDirs returns a working directory for each of n machines.
func nodeDirs(t *testing.T, n int) []string {
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	return dirs
}

// startNodes starts args (train or run, and its flags) on every machine of m, node i in dirs[i].
func (m machines) startNodes(t *testing.T, dirs []string, env []string, args ...string) []*proc {
	t.Helper()
	ps := make([]*proc, len(m.addr))
	for i := range ps {
		ps[i] = m.startNode(t, dirs[i], env, i, args...)
	}
	return ps
}

// exited reports whether the process pid has ended: gone, or a zombie that its parent has not
// reaped yet.
func exited(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')') // the state follows the command's name: "pid (comm) S ..."
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// awaitExits waits up to timeout after since for every process of ps to exit, reading their
// output meanwhile, and returns how long after since each exited (to within the 2 ms per process
// it polls at); one still running then fails the test. wait reaps them afterwards.
func awaitExits(t *testing.T, since time.Time, timeout time.Duration, ps ...*proc) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(ps))
	for left := len(ps); ; {
		for i, p := range ps {
			if took[i] == 0 && exited(p.cmd.Process.Pid) {
				took[i] = time.Since(since)
				left--
			}
		}
		if left == 0 {
			return took
		}
		if time.Since(since) > timeout {
			t.Fatalf("still running %v after the event: %v (0: exited)", timeout, took)
		}
		idle := true
		for _, p := range ps { // a full pipe would block its process
			if !p.eof {
				idle = false
				p.read(func(string) bool { return false }, time.Now().Add(2*time.Millisecond))
			}
		}
		if idle {
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// stoppedRE is the line of a rank that a notice stopped: the rank (none for rank 0), the notice
// and the step.
var stoppedRE = regexp.MustCompile(`(?m)^(?:\[rank (\d+)\] )?spottrain: stopped by (.+?) at step (\d+) after an emergency checkpoint`)

// stoppedAt returns the notice and the step of the line of rank on stderr, which must have one.
func stoppedAt(t *testing.T, stderr string, rank int) (string, int) {
	t.Helper()
	for _, m := range stoppedRE.FindAllStringSubmatch(stderr, -1) {
		if m[1] == "" && rank == 0 || m[1] == strconv.Itoa(rank) {
			step, err := strconv.Atoi(m[3])
			require.NoError(t, err)
			return m[2], step
		}
	}
	t.Fatalf("no line of rank %d stopped by a notice on stderr:\n%s", rank, stderr)
	return "", 0
}

// exitsOf returns the exit events of incarnation inc of evs.
func exitsOf(evs []events.Event, inc int) []events.Exit {
	var out []events.Exit
	for _, e := range evs {
		if x, ok := e.Payload.(events.Exit); ok && e.Incarnation == inc {
			out = append(out, x)
		}
	}
	return out
}

// TestNodesNoticeKillVerify is issue 17's "done when", on three machines: (a) a notice on node 2
// (SIGTERM to its launcher) stops every node after the same step, with one emergency checkpoint
// (on node 0), every launcher exiting 75 within GCP's 30 s of the notice; (b) started again, node 1
// killed (SIGKILL to its launcher: its worker dies with it) ends nodes 0 and 2 with 75 within
// distributed.timeout + 15 s, node 0's exit event names rank 1 as lost, and the newest committed
// checkpoint is intact; (c) started again, by `spottrain run` on every node, the run completes from
// there and `spottrain verify` finds it sound.
func TestNodesNoticeKillVerify(t *testing.T) {
	const n = 3
	m := newMachines(t, n)
	dirs := nodeDirs(t, n)
	rel := filepath.Join("runs", "lstm-solar", "rep-0") // where `spottrain run` puts the run of nodeJob
	runDir := filepath.Join(dirs[0], rel)
	job := nodeJob(rel)
	pause := pauseAt("step", 100*time.Millisecond)

	// (a) A notice on node 2, once a checkpoint is committed.
	ps := m.startNodes(t, dirs, pause, job...)
	ps[0].readLine("test hook: pausing in step", time.Minute) // the run dir is there
	waitCommitted(t, runDir, 0, time.Minute)
	noticed := time.Now()
	require.NoError(t, ps[2].cmd.Process.Signal(syscall.SIGTERM))
	took := awaitExits(t, noticed, time.Minute, ps...)
	steps := make([]int, n)
	for i, p := range ps {
		require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "node %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
		var by string
		by, steps[i] = stoppedAt(t, p.stderr.String(), i)
		want := "a notice to another rank"
		if i == 2 {
			want = "terminated"
		}
		assert.Equal(t, want, by, "what stopped rank %d", i)
		assert.Less(t, took[i], 30*time.Second, "node %d left within GCP's 30 s of the notice", i)
		if i > 0 {
			assert.NoDirExists(t, filepath.Join(dirs[i], "runs"), "node %d writes nothing", i)
		}
	}
	assert.Equal(t, []int{steps[0], steps[0], steps[0]}, steps, "every node stopped after the same step")
	evs := eventstest.Read(t, runDir)
	emergency := eventstest.Of[events.EmergencyCheckpoint](evs)
	require.Len(t, emergency, 1, "one emergency checkpoint")
	assert.Equal(t, steps[0], emergency[0].Step)
	exits := exitsOf(evs, 1)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitPreempted, exits[0].Code)
	assert.Equal(t, steps[0], exits[0].Step, "node 0's exit event has the step every node stopped at")
	assert.False(t, exits[0].PeerLost)
	ck := newest(t, runDir)
	assert.Equal(t, int64(steps[0]), ck.Manifest.Step, "the newest checkpoint is the emergency one")
	assert.Equal(t, codes.Emergency, ck.Manifest.Reason)
	for _, f := range []string{"rng.1.pt", "rng.2.pt"} {
		_, err := ck.ReadFile(f)
		assert.NoError(t, err, "the emergency checkpoint holds every rank's RNG state")
	}
	t.Logf("notice on node 2: every node stopped after step %d; notice to exit: %v", steps[0], took)

	// (b) Node 1 killed, once this start has committed a checkpoint.
	ps = m.startNodes(t, dirs, pause, job...)
	assert.Regexp(t, fmt.Sprintf(`^resumed from step %d, `, steps[0]), ps[0].readLine("resumed from step ", time.Minute))
	committed := waitCommitted(t, runDir, int64(steps[0]), time.Minute)
	worker := workerPid(t, ps[1], 1)
	killed := time.Now()
	require.NoError(t, ps[1].cmd.Process.Kill())
	took = awaitExits(t, killed, nodeTimeout+time.Minute, ps[0], ps[2])
	ps[1].wait(time.Minute)
	assert.True(t, ps[1].killed())
	assert.Eventually(t, func() bool { return exited(worker) }, 10*time.Second, 10*time.Millisecond,
		"node 1's worker died with its launcher")
	for k, i := range []int{0, 2} {
		p := ps[i]
		require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "node %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
		assert.Less(t, took[k], nodeTimeout+15*time.Second, "node %d left within distributed.timeout + 15 s", i)
		prefix := ""
		if i > 0 {
			prefix = `\[rank 2\] `
		}
		assert.Regexp(t, `(?m)^`+prefix+`spottrain: (epoch \d+ batch \d+: )?rank 1 of 3 stopped responding \(`, p.stderr.String(),
			"rank %d names the lost rank", i)
	}
	evs = eventstest.Read(t, runDir)
	exits = exitsOf(evs, 2)
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitPreempted, exits[0].Code)
	assert.True(t, exits[0].PeerLost, "node 0's exit event: a peer was lost")
	assert.Contains(t, exits[0].LostRanks, 1, "and names rank 1")
	assert.NotContains(t, exits[0].LostRanks, 0)
	valid, _ := checkAllValid(t, runDir)
	last := valid[len(valid)-1].Manifest.Step
	assert.GreaterOrEqual(t, last, committed, "the newest committed checkpoint is intact")
	t.Logf("node 1 killed after the commit of step %d: nodes 0 and 2 exited %v after (lost ranks %v); newest checkpoint: step %d",
		committed, took, exits[0].LostRanks, last)

	// (c) To the end, under the runner.
	run := append([]string{"run", "--runs-dir", "runs"}, job[1:]...)
	ps = m.startNodes(t, dirs, nil, run...)
	for i, p := range ps {
		require.Equal(t, codes.ExitDone, p.wait(2*time.Minute), "node %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
		assert.Contains(t, p.stdout(), "[run] "+rel+": completed in ", "node %d", i)
	}
	assert.Equal(t, last, resumedFrom(t, ps[0].out))
	r := spottrain(t, dirs[0], "verify", rel)
	assert.Equal(t, 0, r.code, "verify: stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Regexp(t, `(?m)^\S*rep-0\s+ok\s+3\s+3\s+1\s+0\s`, r.stdout, "3 processes, 3 starts, 1 notice, no process killed")
	assert.Contains(t, r.stdout, "1 trainer group(s) left when a peer stopped responding", "the kill of node 1")
	assert.Contains(t, r.stdout, "all 1 runs are sound\n")
	t.Logf("verify:\n%s", r.stdout)
}

// TestNodesFrozenThenHostKilled freezes node 1 of two (SIGSTOP to its launcher and its worker's
// process group: a machine that froze): node 0 names rank 1 in its exit event and exits 75 within
// distributed.timeout + 15 s, the newest committed checkpoint intact. Node 1 killed at last, the
// machines are started again; then node 0 is killed (SIGKILL to its launcher: the store's host
// and the checkpoints' writer), and node 1 says that the store is gone and exits 75 within
// distributed.timeout + 15 s, the newest committed checkpoint intact. Started again, they resume
// from it and complete.
func TestNodesFrozenThenHostKilled(t *testing.T) {
	m := newMachines(t, 2)
	dirs := nodeDirs(t, 2)
	runDir := filepath.Join(dirs[0], "run")
	job := nodeJob("run")
	pause := pauseAt("step", 100*time.Millisecond)
	ps := m.startNodes(t, dirs, pause, job...)
	ps[0].readLine("test hook: pausing in step", time.Minute) // the run dir is there
	committed := waitCommitted(t, runDir, 0, time.Minute)
	worker := workerPid(t, ps[1], 1)
	frozen := time.Now()
	require.NoError(t, syscall.Kill(ps[1].cmd.Process.Pid, syscall.SIGSTOP))
	require.NoError(t, syscall.Kill(-worker, syscall.SIGSTOP))
	took := awaitExits(t, frozen, nodeTimeout+time.Minute, ps[0])[0]
	p := ps[0]
	require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "node 0: stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Less(t, took, nodeTimeout+15*time.Second, "node 0 left within distributed.timeout + 15 s")
	assert.False(t, exited(ps[1].cmd.Process.Pid), "node 1 is still there, frozen")
	assert.Regexp(t, `(?m)^spottrain: (epoch \d+ batch \d+: )?rank 1 of 2 stopped responding \(`, p.stderr.String())
	exits := eventstest.Of[events.Exit](eventstest.Read(t, runDir))
	require.Len(t, exits, 1)
	assert.Equal(t, codes.ExitPreempted, exits[0].Code)
	assert.True(t, exits[0].PeerLost)
	assert.Equal(t, []int{1}, exits[0].LostRanks)
	valid, _ := checkAllValid(t, runDir)
	last := valid[len(valid)-1].Manifest.Step
	assert.GreaterOrEqual(t, last, committed, "the newest committed checkpoint is intact")
	t.Logf("node 1 frozen after the commit of step %d: node 0 exited %v after; newest checkpoint: step %d", committed, took, last)

	// The frozen machine is gone for good; a new pair takes the run up, and loses node 0.
	require.NoError(t, syscall.Kill(-worker, syscall.SIGKILL))
	require.NoError(t, ps[1].cmd.Process.Kill())
	ps[1].wait(time.Minute)
	ps = m.startNodes(t, dirs, pause, job...)
	assert.Equal(t, last, resumedFrom(t, []string{ps[0].readLine("resumed from step ", time.Minute)}))
	committed = waitCommitted(t, runDir, last, time.Minute)
	killed := time.Now()
	require.NoError(t, ps[0].cmd.Process.Kill())
	took = awaitExits(t, killed, nodeTimeout+time.Minute, ps[1])[0]
	ps[0].wait(time.Minute)
	assert.True(t, ps[0].killed())
	p = ps[1]
	require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "node 1: stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Less(t, took, nodeTimeout+15*time.Second, "node 1 left within distributed.timeout + 15 s")
	assert.Regexp(t, `(?m)^\[rank 1\] spottrain: (epoch \d+ batch \d+: )?the rendezvous store is unreachable`, p.stderr.String())
	assert.Empty(t, exitsOf(eventstest.Read(t, runDir), 2), "node 0, killed, wrote no exit event")
	valid, _ = checkAllValid(t, runDir)
	last = valid[len(valid)-1].Manifest.Step
	assert.GreaterOrEqual(t, last, committed, "the newest committed checkpoint is intact")
	t.Logf("node 0 killed after the commit of step %d: node 1 exited %v after; newest checkpoint: step %d", committed, took, last)

	ps = m.startNodes(t, dirs, nil, job...)
	for i, p := range ps {
		require.Equal(t, codes.ExitDone, p.wait(2*time.Minute), "node %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
	}
	assert.Equal(t, last, resumedFrom(t, ps[0].out))
	checkAllValid(t, runDir)
}

// gcsRequest is a request the fake GCS server got: its method, path and client's address.
type gcsRequest struct{ method, path, client string }

// TestNodesRemoteFreshMachines: a job of two machines with checkpoint.remote (a fake GCS server
// listening where both namespaces reach this test, on the bridge's address) is stopped by a
// notice on node 1; node 0 uploads the emergency checkpoint before it exits. A fresh set of
// machines (no run dir anywhere) started with the same command resumes from the remote copy:
// node 0 alone downloads it, once (its events say one checkpoint_download for that start, and the
// server saw one client read the checkpoint's objects, each once), node 1 gets the state by
// broadcast, and the run ends with the weights of an uninterrupted run of one process (to float
// rounding).
func TestNodesRemoteFreshMachines(t *testing.T) {
	m := newMachines(t, 2)
	dirs := nodeDirs(t, 2)
	var mu sync.Mutex
	var reqs []gcsRequest
	gcs := gcstest.NewAt(t, m.host, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			client, _, _ := net.SplitHostPort(r.RemoteAddr)
			mu.Lock()
			reqs = append(reqs, gcsRequest{r.Method, r.URL.Path, client})
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	}, "spot")
	const url = "gs://spot/mirror/run"
	env := []string{gcs.Env()}
	job := nodeJob("run", "checkpoint.remote=gs://spot/mirror")
	runDir := filepath.Join(dirs[0], "run")

	base := t.TempDir()
	r := spottrain(t, base, nodeJob("run")...)
	require.Equal(t, codes.ExitDone, r.code, "one process: stdout: %s\nstderr: %s", r.stdout, r.stderr)
	want := stateOf(t, newest(t, filepath.Join(base, "run")))

	ps := m.startNodes(t, dirs, append(pauseAt("step", 100*time.Millisecond), env...), job...)
	ps[0].readLine("test hook: pausing in step", time.Minute) // the run dir is there
	waitCommitted(t, runDir, 0, time.Minute)
	require.NoError(t, ps[1].cmd.Process.Signal(syscall.SIGTERM))
	awaitExits(t, time.Now(), time.Minute, ps...)
	for i, p := range ps {
		require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "node %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
	}
	evs := eventstest.Read(t, runDir)
	emergency := eventstest.Of[events.EmergencyCheckpoint](evs)
	require.Len(t, emergency, 1)
	s1 := int64(emergency[0].Step)
	uploads := eventstest.Of[events.CheckpointUpload](evs)
	require.NotEmpty(t, uploads)
	assert.Equal(t, s1, uploads[len(uploads)-1].Step, "node 0 uploaded the emergency checkpoint before its exit")

	// A fresh set of machines.
	require.NoError(t, os.RemoveAll(runDir))
	assert.NoDirExists(t, filepath.Join(dirs[1], "run"), "node 1 wrote nothing")
	mu.Lock()
	reqs = nil
	mu.Unlock()
	ps = m.startNodes(t, dirs, env, job...)
	for i, p := range ps {
		require.Equal(t, codes.ExitDone, p.wait(2*time.Minute), "node %d: stdout:\n%s\nstderr: %s", i, p.tail(10), p.stderr.String())
	}
	assert.Contains(t, ps[0].stdout(), "downloaded step "+itoa(s1)+" from "+url+" (")
	assert.Equal(t, s1, resumedFrom(t, ps[0].out))
	assert.NoDirExists(t, filepath.Join(dirs[1], "run"), "node 1 wrote nothing")

	evs = eventstest.Read(t, runDir)
	assert.Equal(t, 2, checkIncarnations(t, evs), "the log came back from the remote")
	downloads := map[int][]int64{}
	for _, e := range evs {
		if d, ok := e.Payload.(events.CheckpointDownload); ok {
			downloads[e.Incarnation] = append(downloads[e.Incarnation], d.Step)
		}
	}
	assert.Equal(t, map[int][]int64{2: {s1}}, downloads, "one checkpoint_download, by the start on fresh machines")

	// The server's log of the second start: the reads of the checkpoint's objects.
	mu.Lock()
	defer mu.Unlock()
	dir := path.Join("mirror", "run", checkpoint.DirName(s1)) + "/" // in the JSON API's and the XML API's paths
	reads := map[string]int{}
	var clients []string
	for _, q := range reqs {
		if i := strings.Index(q.path, dir); q.method == http.MethodGet && i >= 0 {
			reads[q.path[i+len(dir):]]++
			if !slices.Contains(clients, q.client) {
				clients = append(clients, q.client)
			}
		}
	}
	assert.Equal(t, []string{m.addr[0]}, clients, "node 0 alone read the checkpoint")
	for _, f := range newest(t, runDir).Manifest.Files { // the files of every checkpoint of this run
		assert.Contains(t, reads, f.Name, "the download read %s", f.Name)
	}
	for name, n := range reads {
		if name != checkpoint.ManifestName { // the manifest is read by every listing of the remote too
			assert.Equal(t, 1, n, "%s read once", name)
		}
	}
	t.Logf("the second start read step %d's objects %v from %v", s1, reads, clients)

	got := newest(t, runDir)
	worst := assertClose(t, want, stateOf(t, got), 1e-6, 1e-4)
	t.Logf("final step %d; the largest difference of a weight from the uninterrupted run of one process: %.3g", got.Manifest.Step, worst)
}
