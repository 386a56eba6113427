package main

// Tests of a group of several machines (torchrun's static rendezvous: --nnodes, --node-rank,
// --master-addr, --master-port): each "machine" a network namespace with a veth pair to a bridge,
// so that the group's traffic crosses real interfaces; where namespaces cannot be made (not root,
// no ip), all nodes run on this machine and meet on 127.0.0.1, and the test says which ran.

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/events"
	"spottrain/events/eventstest"
)

// machines are the nodes of a test: the command prefix that runs a program on each (ip netns exec
// NS, or nothing), each node's address, the address at which every node reaches this test
// process (for a server of the test's, such as a fake GCS), and where node 0 hosts the store.
type machines struct {
	prefix     [][]string
	addr       []string
	host       string
	masterAddr string
	masterPort int
}

// newMachines makes n network namespaces, each joined by a veth pair to a bridge (in a namespace
// of its own), node i at 10.231.K.(i+1)/24, and this (the root) namespace joined to the bridge
// too, at 10.231.K.254, K from the test process's id (all deleted at the end of the test); or,
// where that is impossible, n "machines" that are this one, on 127.0.0.1.
func newMachines(t *testing.T, n int) machines {
	t.Helper()
	if m, err := netnsMachines(t, n); err == nil {
		t.Logf("nodes: %d network namespaces joined by a bridge (%s; this test at %s)", n, strings.Join(m.addr, ", "), m.host)
		return m
	} else {
		t.Logf("nodes: no network namespaces (%v): all %d nodes on this machine, on 127.0.0.1", err, n)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	m := machines{prefix: make([][]string, n), host: "127.0.0.1", masterAddr: "127.0.0.1", masterPort: port}
	for range n {
		m.addr = append(m.addr, "127.0.0.1")
	}
	return m
}

// noNetnsEnv, set, makes the tests run all nodes on 127.0.0.1 (the fallback) even where they
// could have namespaces.
const noNetnsEnv = "SPOTTRAIN_TEST_NO_NETNS"

// netnsMachines makes the namespaces of newMachines, or returns why it cannot.
func netnsMachines(t *testing.T, n int) (machines, error) {
	if os.Getenv(noNetnsEnv) != "" {
		return machines{}, fmt.Errorf("%s is set", noNetnsEnv)
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return machines{}, err
	}
	if os.Geteuid() != 0 {
		return machines{}, fmt.Errorf("not root (euid %d)", os.Geteuid())
	}
	// Names unique to this test process, at most 15 bytes for the links; a subnet of its own,
	// for the bridge's address is in the root namespace, which other test processes share.
	netnsCount++
	id := strconv.Itoa(os.Getpid()%10000) + strconv.Itoa(netnsCount%10)
	subnet := fmt.Sprintf("10.231.%d.", 1+(os.Getpid()*10+netnsCount)%250)
	// The bridge is in a namespace of its own, the switch: the root namespace's firewall (a
	// FORWARD policy of DROP, as Docker sets, applies to bridged frames where br_netfilter is
	// loaded) sees only the traffic to this test, which is local (INPUT).
	sw, host, hostPeer := "st"+id+"s", "sth"+id, "stx"+id
	ns, link, peer := make([]string, n), make([]string, n), make([]string, n)
	for i := range n {
		c := string(rune('a' + i))
		ns[i], link[i], peer[i] = "st"+id+c, "stv"+id+c, "stp"+id+c
	}
	run := func(args ...string) error {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	var made []string
	cleanup := func() {
		for _, n := range made {
			_ = exec.Command(ip, "netns", "del", n).Run() // takes its ends of veth pairs, so the pairs, with it
		}
		for _, l := range append(link, host) {
			_ = exec.Command(ip, "link", "del", l).Run() // a pair left here by a failed move
		}
	}
	t.Cleanup(cleanup)
	for _, name := range append([]string{sw}, ns...) {
		if err := run("netns", "add", name); err != nil {
			return machines{}, err
		}
		made = append(made, name)
	}
	steps := [][]string{{"-n", sw, "link", "add", "br0", "type", "bridge"}, {"-n", sw, "link", "set", "br0", "up"},
		{"link", "add", host, "type", "veth", "peer", "name", hostPeer}, {"link", "set", hostPeer, "netns", sw},
		{"-n", sw, "link", "set", hostPeer, "master", "br0"}, {"-n", sw, "link", "set", hostPeer, "up"},
		{"addr", "add", subnet + "254/24", "dev", host}, {"link", "set", host, "up"}}
	m := machines{host: subnet + "254", masterAddr: subnet + "1", masterPort: 29517}
	for i := range n {
		m.addr = append(m.addr, fmt.Sprintf("%s%d", subnet, i+1))
		m.prefix = append(m.prefix, []string{ip, "netns", "exec", ns[i]})
		steps = append(steps, []string{"link", "add", link[i], "type", "veth", "peer", "name", peer[i]},
			[]string{"link", "set", peer[i], "netns", ns[i]},
			[]string{"link", "set", link[i], "netns", sw},
			[]string{"-n", sw, "link", "set", link[i], "master", "br0"},
			[]string{"-n", sw, "link", "set", link[i], "up"},
			[]string{"-n", ns[i], "addr", "add", m.addr[i] + "/24", "dev", peer[i]},
			[]string{"-n", ns[i], "link", "set", peer[i], "up"},
			[]string{"-n", ns[i], "link", "set", "lo", "up"})
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return machines{}, err
		}
	}
	return m, nil
}

// netnsCount numbers the namespaces' sets of this test process.
var netnsCount int

// start starts node's launcher of the job of TestNodesTrain and TestNodesNoticeAndResume, with
// run dir runDir, in dir.
func (m machines) start(t *testing.T, dir string, env []string, node int, runDir string) *proc {
	t.Helper()
	return m.startNode(t, dir, env, node, "train", "--experiment", "lstm-ondemand",
		"--set", "threads=1", "--set", "run_dir="+runDir, "--set", "data.lstm.days=120", "--set", "train.epochs=2",
		"--set", "distributed.timeout=10s", "--set", "device=cpu", "--set", "preemption.notice=none")
}

// startNode starts the command args (train or run, and its flags) on node, as its part of a job of
// all the machines (one worker each), in dir.
func (m machines) startNode(t *testing.T, dir string, env []string, node int, args ...string) *proc {
	t.Helper()
	argv := append(append(append([]string{}, m.prefix[node]...), bin), args...)
	argv = append(argv, "--nnodes", strconv.Itoa(len(m.addr)), "--node-rank", strconv.Itoa(node),
		"--master-addr", m.masterAddr, "--master-port", strconv.Itoa(m.masterPort), "--nproc-per-node", "1")
	return startCommand(t, dir, env, argv...)
}

// checkRunEvents checks the event log of node 0's run dir: a run_start of world 2 for each start,
// and the exit codes, in order.
func checkRunEvents(t *testing.T, runDir string, exits ...int) []events.Event {
	t.Helper()
	evs := eventstest.Read(t, runDir)
	starts := eventstest.Of[events.RunStart](evs)
	require.Len(t, starts, len(exits))
	for _, s := range starts {
		assert.Equal(t, 2, s.World, "a group of 2 processes")
	}
	var got []int
	for _, e := range eventstest.Of[events.Exit](evs) {
		got = append(got, e.Code)
	}
	assert.Equal(t, exits, got)
	return evs
}

// TestNodesTrain: two machines of one worker each train one group: both launchers exit 0; node
// 0's run dir holds the run (world 2), node 1 writes nothing.
func TestNodesTrain(t *testing.T) {
	m := newMachines(t, 2)
	dir := t.TempDir()
	p0 := m.start(t, dir, nil, 0, "run0")
	p1 := m.start(t, dir, nil, 1, "run1")
	c0, c1 := p0.wait(2*time.Minute), p1.wait(2*time.Minute)
	require.Equal(t, codes.ExitDone, c0, "node 0: stdout:\n%s\nstderr: %s", p0.tail(10), p0.stderr.String())
	require.Equal(t, codes.ExitDone, c1, "node 1: stdout:\n%s\nstderr: %s", p1.tail(10), p1.stderr.String())
	checkRunEvents(t, filepath.Join(dir, "run0"), codes.ExitDone)
	assert.FileExists(t, filepath.Join(dir, "run0", "metrics.json"))
	assert.Regexp(t, `(?m)^run dir: run0$`, p0.stdout(), "rank 0 reports")
	assert.NotContains(t, p1.stdout(), "run dir:", "rank 1 does not")
	assert.NoDirExists(t, filepath.Join(dir, "run1"), "a rank other than 0 writes nothing")
}

// TestNodesNoticeAndResume: SIGTERM to node 1's launcher stops both machines' workers after the
// same step, with one emergency checkpoint in node 0's run dir: both launchers exit 75. Started
// again, both resume there and complete.
func TestNodesNoticeAndResume(t *testing.T) {
	m := newMachines(t, 2)
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run0")
	pause := pauseAt("step", 200*time.Millisecond)
	p0 := m.start(t, dir, pause, 0, "run0")
	p1 := m.start(t, dir, pause, 1, "run1")
	p0.readLine("test hook: pausing in step", time.Minute)
	p1.readLine("[rank 1] test hook: pausing in step", time.Minute)
	require.NoError(t, p1.cmd.Process.Signal(syscall.SIGTERM))
	c1, c0 := p1.wait(time.Minute), p0.wait(time.Minute)
	require.Equal(t, codes.ExitPreempted, c1, "node 1: stdout:\n%s\nstderr: %s", p1.tail(10), p1.stderr.String())
	require.Equal(t, codes.ExitPreempted, c0, "node 0: stdout:\n%s\nstderr: %s", p0.tail(10), p0.stderr.String())
	evs := checkRunEvents(t, runDir, codes.ExitPreempted)
	emergency := eventstest.Of[events.EmergencyCheckpoint](evs)
	require.Len(t, emergency, 1, "one emergency checkpoint")
	valid, _, err := checkpoint.List(runDir)
	require.NoError(t, err)
	require.NotEmpty(t, valid)
	ck := valid[len(valid)-1]
	assert.Equal(t, int64(emergency[0].Step), ck.Manifest.Step, "the newest checkpoint is the emergency one")
	assert.Equal(t, codes.Emergency, ck.Manifest.Reason)
	assert.Regexp(t, `(?m)^\[rank 1\] spottrain: stopped by terminated at step `+strconv.Itoa(emergency[0].Step)+` after an emergency checkpoint`,
		p1.stderr.String(), "rank 1 got the notice, and stopped after the same step")
	assert.NoDirExists(t, filepath.Join(dir, "run1"))

	p0 = m.start(t, dir, nil, 0, "run0")
	p1 = m.start(t, dir, nil, 1, "run1")
	c0, c1 = p0.wait(2*time.Minute), p1.wait(2*time.Minute)
	require.Equal(t, codes.ExitDone, c0, "node 0: stdout:\n%s\nstderr: %s", p0.tail(10), p0.stderr.String())
	require.Equal(t, codes.ExitDone, c1, "node 1: stdout:\n%s\nstderr: %s", p1.tail(10), p1.stderr.String())
	assert.Regexp(t, regexp.MustCompile(`(?m)^resumed from step `+strconv.Itoa(emergency[0].Step)+`, `), p0.stdout())
	checkRunEvents(t, runDir, codes.ExitPreempted, codes.ExitDone)
	assert.FileExists(t, filepath.Join(runDir, "metrics.json"))
	assert.NoDirExists(t, filepath.Join(dir, "run1"))
}

// TestNodesPortInUse: node 0 that cannot host the store on distributed.master_port fails at
// once, in one line that names the key; no worker starts.
func TestNodesPortInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	require.NoError(t, err)
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	dir := t.TempDir()
	r := spottrain(t, dir, append(append(lstmTrain(), tiny("run")...), "--nnodes", "2", "--master-addr", "127.0.0.1",
		"--master-port", port)...)
	assert.Equal(t, codes.ExitFailure, r.code)
	assert.Contains(t, errorLine(t, r.stderr), "start the rendezvous store: distributed.master_port "+port+": node 0 cannot host the store there: ")
	assert.Empty(t, r.stdout, "no worker started")
	assert.NoDirExists(t, filepath.Join(dir, "run"))
}
