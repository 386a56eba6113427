package distributed_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/codes"
	"spottrain/distributed"
)

// TestMain doubles as a worker when the test binary is re-executed with LAUNCH_TEST_CHILD set
// (see worker), and as a launcher of such workers with LAUNCH_TEST_LAUNCHER set.
func TestMain(m *testing.M) {
	if mode := os.Getenv("LAUNCH_TEST_CHILD"); mode != "" {
		os.Exit(worker(mode))
	}
	if os.Getenv("LAUNCH_TEST_LAUNCHER") != "" {
		os.Exit(launcher())
	}
	os.Exit(m.Run())
}

// worker plays one rank, read with FromEnv. Modes:
//
//	exit:   exit with the rank's word of LAUNCH_TEST_CODES ("0 75 1"; "kill": SIGKILL itself).
//	env:    print the group's variables and the Member read, then exit 0.
//	lines:  write lines in pieces, ending with an unfinished one, then exit 0.
//	freeze: rank 0 prints its pid and stops itself (SIGSTOP); the others exit 75.
//	signal: print "ready", then on SIGTERM or SIGINT print "got SIGNAL" and exit 75.
//	orphan: print "pid PID" and wait.
//
// Any worker still waiting after 20 s exits 1, so none outlives a broken test.
func worker(mode string) int {
	m, err := distributed.FromEnv(os.Getenv)
	if err != nil || m == nil {
		fmt.Fprintln(os.Stderr, "worker: no member:", err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	switch mode {
	case "exit":
		word := strings.Fields(os.Getenv("LAUNCH_TEST_CODES"))[m.Rank]
		if word == "kill" {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		code, _ := strconv.Atoi(word)
		return code
	case "env":
		for _, k := range []string{"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
			"MASTER_PORT", "TORCHELASTIC_USE_AGENT_STORE", "TORCHELASTIC_RESTART_COUNT", "LAUNCH_TEST_PARENT"} {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		fmt.Printf("member %+v\n", *m)
		return 0
	case "lines":
		for _, piece := range []string{"a\nb", "c\n", "d\ne\n", "tail"} {
			os.Stdout.WriteString(piece)
			os.Stdout.Sync()
		}
		fmt.Fprintln(os.Stderr, "err line")
		return 0
	case "freeze":
		if m.Rank != 0 {
			return codes.ExitPreempted
		}
		fmt.Printf("freezing %d\n", os.Getpid())
		_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	case "signal":
		fmt.Println("ready")
	case "orphan":
		fmt.Printf("pid %d\n", os.Getpid())
	}
	select {
	case s := <-sigs:
		fmt.Println("got", s)
		return codes.ExitPreempted
	case <-time.After(20 * time.Second):
		return 1
	}
}

// launcher runs a Launcher of two orphan workers, for TestLauncherDeathKillsWorkers.
func launcher() int {
	l := &distributed.Launcher{NProc: 2, Command: self, Listen: listen(&fakeStore{port: 1}), Timeout: time.Second,
		Stdout: os.Stdout, Stderr: os.Stderr}
	os.Setenv("LAUNCH_TEST_LAUNCHER", "")
	os.Setenv("LAUNCH_TEST_CHILD", "orphan")
	if err := l.Run(); err != nil {
		return 1
	}
	return 0
}

// self is the worker command: the test binary, which TestMain turns into a worker.
func self(int) *exec.Cmd { return exec.Command(os.Args[0], "-test.run=^$") }

type fakeStore struct {
	port   int
	mu     sync.Mutex
	closed bool
}

func (s *fakeStore) Port() int { return s.port }
func (s *fakeStore) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}
func (s *fakeStore) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func listen(s *fakeStore) func(time.Duration) (distributed.Store, error) {
	return func(time.Duration) (distributed.Store, error) { return s, nil }
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// group is a Launcher of the worker mode under test, with its output.
type group struct {
	*distributed.Launcher
	store          *fakeStore
	stdout, stderr *syncBuffer
	signals        chan os.Signal
}

func newGroup(t *testing.T, mode string, nproc int) *group {
	t.Setenv("LAUNCH_TEST_CHILD", mode)
	g := &group{store: &fakeStore{port: 29555}, stdout: &syncBuffer{}, stderr: &syncBuffer{}, signals: make(chan os.Signal, 1)}
	g.Launcher = &distributed.Launcher{NProc: nproc, Command: self, Listen: listen(g.store), Timeout: 500 * time.Millisecond,
		Signals: g.signals, Stdout: g.stdout, Stderr: g.stderr}
	return g
}

// start runs the group in the background; the channel carries Run's result.
func (g *group) start() <-chan error {
	done := make(chan error, 1)
	go func() { done <- g.Run() }()
	return done
}

// wait returns the result of Run, failing the test after 20 s.
func wait(t *testing.T, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the launcher did not return within 20 s")
		return nil
	}
}

// exitCode is the group's exit status that err carries: 0 for nil.
func exitCode(t *testing.T, err error) int {
	if err == nil {
		return 0
	}
	var ee *distributed.ExitError
	require.ErrorAs(t, err, &ee)
	return ee.Code
}

// TestExitStatus: 0 when all exit 0; else the lowest rank's real failure; else 75 (a preemption
// or a lost peer, dead by a signal); every abnormal exit is one line naming the rank.
func TestExitStatus(t *testing.T) {
	for _, tt := range []struct {
		name, codes string
		want        distributed.ExitError // Code 0: nil; Rank -1: either (the first to exit)
		lines       []string
	}{
		{"AllDone", "0 0", distributed.ExitError{}, nil},
		{"Preempted", "75 75", distributed.ExitError{Code: 75, Rank: -1, Status: "exit status 75"},
			[]string{"launcher: rank 0: exit status 75", "launcher: rank 1: exit status 75"}},
		{"OnePreempted", "0 75", distributed.ExitError{Code: 75, Rank: 1, Status: "exit status 75"},
			[]string{"launcher: rank 1: exit status 75"}},
		{"FailureWins", "75 1 0", distributed.ExitError{Code: 1, Rank: 1, Status: "exit status 1"},
			[]string{"launcher: rank 0: exit status 75", "launcher: rank 1: exit status 1"}},
		{"LowestRankFailure", "0 1 2", distributed.ExitError{Code: 1, Rank: 1, Status: "exit status 1"},
			[]string{"launcher: rank 1: exit status 1", "launcher: rank 2: exit status 2"}},
		{"BadInput", "2 2", distributed.ExitError{Code: 2, Status: "exit status 2"},
			[]string{"launcher: rank 0: exit status 2", "launcher: rank 1: exit status 2"}},
		{"KilledPeer", "0 kill", distributed.ExitError{Code: 75, Rank: 1, Status: "signal: killed"},
			[]string{"launcher: rank 1: signal: killed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("LAUNCH_TEST_CODES", tt.codes)
			g := newGroup(t, "exit", len(strings.Fields(tt.codes)))
			err := wait(t, g.start())
			if tt.want.Code == 0 {
				require.NoError(t, err)
			} else {
				var ee *distributed.ExitError
				require.ErrorAs(t, err, &ee)
				if tt.want.Rank < 0 {
					tt.want.Rank = ee.Rank
				}
				assert.Equal(t, tt.want, *ee)
			}
			lines := strings.Split(strings.TrimSpace(g.stderr.String()), "\n")
			if tt.lines == nil {
				lines = nil
			}
			assert.ElementsMatch(t, tt.lines, lines)
			assert.True(t, g.store.isClosed(), "the store is closed at the end")
		})
	}
}

// TestEnv: each worker gets the parent's environment and its place in the group, which FromEnv
// reads back; the other ranks' lines are prefixed.
func TestEnv(t *testing.T) {
	t.Setenv("LAUNCH_TEST_PARENT", "inherited")
	g := newGroup(t, "env", 2)
	require.NoError(t, wait(t, g.start()))
	for rank := range 2 {
		assertWorkerEnv(t, g.stdout.String(), distributed.Member{Rank: rank, LocalRank: rank, World: 2, LocalWorld: 2,
			MasterAddr: "127.0.0.1", MasterPort: 29555}, 0, "LAUNCH_TEST_PARENT=inherited")
	}
}

// assertWorkerEnv checks that out, the output of "env" workers, holds the variables of the
// worker m (on node node) and the Member that FromEnv read from them, with extra variables.
func assertWorkerEnv(t *testing.T, out string, m distributed.Member, node int, extra ...string) {
	t.Helper()
	m.AgentStore, m.Prefix = true, "/worker/attempt_0"
	prefix := ""
	if m.Rank > 0 {
		prefix = "[rank " + strconv.Itoa(m.Rank) + "] "
	}
	for _, kv := range append([]string{"RANK=" + strconv.Itoa(m.Rank), "LOCAL_RANK=" + strconv.Itoa(m.LocalRank),
		"WORLD_SIZE=" + strconv.Itoa(m.World), "LOCAL_WORLD_SIZE=" + strconv.Itoa(m.LocalWorld), "GROUP_RANK=" + strconv.Itoa(node),
		"MASTER_ADDR=" + m.MasterAddr, "MASTER_PORT=" + strconv.Itoa(m.MasterPort),
		"TORCHELASTIC_USE_AGENT_STORE=True", "TORCHELASTIC_RESTART_COUNT=0"}, extra...) {
		assert.Contains(t, "\n"+out, "\n"+prefix+kv+"\n", "rank %d", m.Rank)
	}
	assert.Contains(t, "\n"+out, "\n"+prefix+"member "+fmt.Sprintf("%+v", m)+"\n")
}

// TestEnvNodes: on each of two machines of two workers, the workers get their global ranks, the
// group's size and node 0's address; node 0's launcher hosts the store, node 1's hosts none.
func TestEnvNodes(t *testing.T) {
	for node := range 2 {
		t.Run("Node"+strconv.Itoa(node), func(t *testing.T) {
			g := newGroup(t, "env", 2)
			g.NNodes, g.NodeRank, g.MasterAddr, g.MasterPort = 2, node, "10.231.0.1", 29555
			listened := false
			g.Listen = func(time.Duration) (distributed.Store, error) { listened = true; return g.store, nil }
			require.NoError(t, wait(t, g.start()))
			assert.Equal(t, node == 0, listened, "only node 0 hosts the store")
			for local := range 2 {
				assertWorkerEnv(t, g.stdout.String(), distributed.Member{Rank: node*2 + local, LocalRank: local, World: 4, LocalWorld: 2,
					MasterAddr: "10.231.0.1", MasterPort: 29555}, node)
			}
		})
	}
}

// TestEnvNodesOneWorker: a machine of one worker, node 1 of 3, is still a group's part.
func TestEnvNodesOneWorker(t *testing.T) {
	g := newGroup(t, "env", 1)
	g.NNodes, g.NodeRank, g.MasterAddr, g.MasterPort = 3, 1, "node0", 29600
	g.Listen = nil // never called
	require.NoError(t, wait(t, g.start()))
	assertWorkerEnv(t, g.stdout.String(), distributed.Member{Rank: 1, World: 3, LocalWorld: 1, MasterAddr: "node0", MasterPort: 29600}, 1)
}

// TestNodesBadPlace: a launcher of several nodes without its place or node 0's address is a
// programmer's mistake, reported before anything starts.
func TestNodesBadPlace(t *testing.T) {
	g := newGroup(t, "env", 1)
	g.NNodes, g.NodeRank, g.MasterAddr, g.MasterPort = 2, 2, "h", 1
	assert.ErrorContains(t, g.Run(), "needs NodeRank in [0, 2)")
	g.NodeRank, g.MasterAddr = 0, ""
	assert.ErrorContains(t, g.Run(), "MasterAddr")
	assert.Empty(t, g.stdout.String())
}

// TestOutputLines: rank 0's output is passed as it is; the others' lines are whole and prefixed,
// an unfinished last line included.
func TestOutputLines(t *testing.T) {
	g := newGroup(t, "lines", 3)
	require.NoError(t, wait(t, g.start()))
	rank0 := regexp.MustCompile(`\[rank \d\] [^\n]*\n`).ReplaceAllString(g.stdout.String(), "")
	assert.Equal(t, "a\nbc\nd\ne\ntail", rank0, "rank 0 as it wrote it, around the others' whole lines")
	for _, r := range []string{"1", "2"} {
		assert.Equal(t, []string{"a", "bc", "d", "e", "tail"}, linesOf(g.stdout.String(), r), "rank %s", r)
		assert.Equal(t, []string{"err line"}, linesOf(g.stderr.String(), r), "rank %s", r)
	}
	assert.Regexp(t, regexp.MustCompile(`(?m)^err line$`), g.stderr.String())
}

// linesOf returns the lines that out has of rank r, without their prefix: whole lines, which
// may follow an unfinished line of rank 0's.
func linesOf(out, r string) []string {
	var lines []string
	for _, m := range regexp.MustCompile(`\[rank `+r+`\] ([^\n]*)\n`).FindAllStringSubmatch(out, -1) {
		lines = append(lines, m[1])
	}
	return lines
}

// TestSignalsForwarded: a signal to the launcher reaches every live worker.
func TestSignalsForwarded(t *testing.T) {
	g := newGroup(t, "signal", 2)
	done := g.start()
	require.Eventually(t, func() bool {
		out := g.stdout.String()
		return strings.Contains(out, "[rank 1] ready\n") && regexp.MustCompile(`(?m)^ready$`).MatchString(out)
	}, 10*time.Second, 10*time.Millisecond, "both ranks ready")
	g.signals <- syscall.SIGTERM
	err := wait(t, done)
	assert.Equal(t, codes.ExitPreempted, exitCode(t, err))
	assert.Contains(t, g.stdout.String(), "[rank 1] got terminated\n")
	assert.Regexp(t, regexp.MustCompile(`(?m)^got terminated$`), g.stdout.String())
}

// TestFrozenRankKilled: a rank that froze (SIGSTOP) while the others left is killed Timeout +
// Grace after the first exit, with a line naming it; the group exits 75.
func TestFrozenRankKilled(t *testing.T) {
	g := newGroup(t, "freeze", 3)
	var waited []time.Duration
	g.After = func(d time.Duration) <-chan time.Time {
		waited = append(waited, d)
		assert.Eventually(t, func() bool { return stopped(g.stdout.String()) }, 10*time.Second, 10*time.Millisecond, "rank 0 froze")
		return time.After(0)
	}
	err := wait(t, g.start())
	assert.Equal(t, codes.ExitPreempted, exitCode(t, err))
	assert.Equal(t, []time.Duration{g.Timeout + distributed.Grace}, waited)
	assert.Contains(t, g.stderr.String(), "launcher: rank 0 did not exit within 10.5s of rank ")
	assert.Contains(t, g.stderr.String(), "'s end (exit status 75): killed it (SIGKILL)\n")
	assert.NotContains(t, g.stderr.String(), "launcher: rank 0: ", "the kill is its only line")
}

// stopped reports whether the process that out's "freezing PID" line names is stopped.
func stopped(out string) bool {
	m := regexp.MustCompile(`(?m)^freezing (\d+)$`).FindStringSubmatch(out)
	return m != nil && state(m[1]) == 'T'
}

// state returns the state of the process pid as /proc/PID/stat says it (R, S, T, Z, ...), or 0
// when there is no such process.
func state(pid string) byte {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	_, after, _ := bytes.Cut(stat, []byte(") "))
	if len(after) == 0 {
		return 0
	}
	return after[0]
}

// TestListenFails: no worker starts without a store.
func TestListenFails(t *testing.T) {
	g := newGroup(t, "env", 2)
	g.Listen = func(time.Duration) (distributed.Store, error) { return nil, errors.New("no port") }
	err := g.Run()
	assert.EqualError(t, err, "start the rendezvous store: no port")
	assert.Empty(t, g.stdout.String())
}

// TestWorkersStartWithNoticesBlocked: a worker's first instruction sees SIGTERM, SIGINT and SIGHUP
// blocked (grep inherits the mask its launcher forked it with), and nothing else.
func TestWorkersStartWithNoticesBlocked(t *testing.T) {
	g := newGroup(t, "env", 2)
	g.Command = func(int) *exec.Cmd { return exec.Command("grep", "^SigBlk:", "/proc/self/status") }
	require.NoError(t, wait(t, g.start()))
	out := g.stdout.String()
	assert.Regexp(t, `(?m)^SigBlk:\s+0+4003$`, out, "SIGHUP (1), SIGINT (2) and SIGTERM (15)")
	assert.Regexp(t, `(?m)^\[rank 1\] SigBlk:\s+0+4003$`, out)
}

// TestStartFails: a worker that cannot start ends the group at once: those started are killed.
func TestStartFails(t *testing.T) {
	g := newGroup(t, "signal", 2)
	g.Command = func(rank int) *exec.Cmd {
		if rank == 1 {
			return exec.Command(filepath.Join(t.TempDir(), "missing"))
		}
		return self(rank)
	}
	start := time.Now()
	err := wait(t, g.start())
	assert.ErrorContains(t, err, "start worker rank 1: ")
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.Less(t, time.Since(start), 15*time.Second, "rank 0, which waits 20 s for a signal, was killed")
	assert.True(t, g.store.isClosed())
}

// TestLauncherDeathKillsWorkers: workers die with a launcher killed by SIGKILL.
func TestLauncherDeathKillsWorkers(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LAUNCH_TEST_LAUNCHER=1")
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	var pids []int
	sc := bufio.NewScanner(out)
	for len(pids) < 2 && sc.Scan() {
		var pid int
		if _, err := fmt.Sscanf(strings.TrimPrefix(sc.Text(), "[rank 1] "), "pid %d", &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	require.Len(t, pids, 2)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	for _, pid := range pids {
		assert.Eventually(t, func() bool { return gone(pid) }, 10*time.Second, 10*time.Millisecond, "worker %d", pid)
	}
}

// gone reports whether the process pid has ended (a zombie that nobody reaped has).
func gone(pid int) bool {
	st := state(strconv.Itoa(pid))
	return st == 0 || st == 'Z' || st == 'X'
}
