package distributed

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"spottrain/codes"
)

// Grace is how long, beyond the group's Timeout, the Launcher waits for the other workers once
// one has ended abnormally: they notice the lost peer at their next collective, within Timeout.
const Grace = 10 * time.Second

// Store is the rendezvous store a Launcher hosts for its workers: c10d's TCPStore as a server on
// a free port of this machine (torch.Store).
type Store interface {
	Port() int
	Close()
}

// Launcher starts a group of worker processes on this machine, as `torchrun --standalone
// --nproc-per-node N` does, or this machine's part of a group of NNodes machines, as `torchrun
// --nnodes M --node-rank R --master-addr HOST --master-port P --nproc-per-node N` does (a static
// rendezvous: every machine's launcher is started with its own node rank), and sees it to its end.
// It guarantees:
//
//   - On one machine, the launcher hosts the store on a free port (Listen). Of several, node 0's
//     launcher hosts it on MasterPort (Listen too: its Store's Port is MasterPort) and the
//     others host nothing: their workers reach node 0's at MasterAddr:MasterPort.
//   - Each worker i gets the parent's environment plus RANK=NodeRank*N+i, LOCAL_RANK=i,
//     WORLD_SIZE=NNodes*N, LOCAL_WORLD_SIZE=N, GROUP_RANK=NodeRank, MASTER_ADDR (127.0.0.1 on
//     one machine), MASTER_PORT (the store's port), TORCHELASTIC_USE_AGENT_STORE=True and
//     TORCHELASTIC_RESTART_COUNT=0 (so FromEnv reads it).
//   - Workers run in a process group of their own, so that a terminal's Ctrl+C reaches only the
//     launcher; every signal from Signals is forwarded to every live worker.
//   - A launcher that dies, even by SIGKILL, takes its workers with it (PR_SET_PDEATHSIG).
//   - Workers start with SIGTERM, SIGINT and SIGHUP blocked (see blockNotices): one forwarded
//     while a worker starts waits for its handler.
//   - Rank 0's output goes to Stdout and Stderr as it is; the other ranks' lines (of every node)
//     are prefixed "[rank N] ", written in whole lines (never a part of one).
//   - Once a worker ends abnormally (a status other than 0, or a signal), the others have Timeout
//     plus Grace to exit; those left (frozen, or blocked for good) are then SIGKILLed. Nothing
//     hangs.
//   - Every abnormal exit is one line on Stderr naming the rank and its status; a worker that
//     the launcher killed has the line of its kill instead.
//   - The store is closed once every worker has exited.
type Launcher struct {
	NProc int // workers on this machine, >= 1
	// NNodes is the number of machines (0 or 1: this one alone); NodeRank is this machine's
	// place among them, in [0, NNodes).
	NNodes, NodeRank int
	// MasterAddr and MasterPort are where node 0 hosts the store, when NNodes > 1.
	MasterAddr string
	MasterPort int
	// Command makes worker rank's unstarted command. The Launcher adds the group's variables to
	// its Env (the parent's environment when nil) and sets its output and SysProcAttr.
	Command func(rank int) *exec.Cmd
	// Listen starts the rendezvous store that this launcher hosts: on a free port
	// (torch.NewStoreServer) on one machine, on MasterPort (torch.NewStoreServerAt) on node 0 of
	// several; timeout bounds its waits. Nodes other than 0 never call it.
	Listen  func(timeout time.Duration) (Store, error)
	Timeout time.Duration // distributed.timeout: the workers' rendezvous and collectives
	// Signals carries the signals to forward to the workers (the launcher's notices).
	Signals <-chan os.Signal
	// Stdout and Stderr take the workers' output, written from several goroutines: each must be
	// safe for concurrent Writes (an *os.File is). Rank 0 gets them as they are.
	Stdout, Stderr io.Writer
	// After waits wall time; nil means time.After. Tests replace it to control time.
	After func(time.Duration) <-chan time.Time
}

// ExitError is the end of a group in which a worker did not exit 0. Code is the group's exit
// status: the first (lowest rank) status that is neither 0 nor 75 (a failure: 1, or 2 for bad
// input), else 75 (codes.ExitPreempted: a preemption or a lost peer; start the group again).
type ExitError struct {
	Code   int
	Rank   int    // the rank whose exit gave Code; for 75, the first rank that exited abnormally
	Status string // that rank's exit, e.g. "exit status 75" or "signal: killed"
}

func (e *ExitError) Error() string {
	if e.Code == codes.ExitPreempted {
		return fmt.Sprintf("worker group stopped (rank %d: %s); start again to resume", e.Rank, e.Status)
	}
	return fmt.Sprintf("worker group failed (rank %d: %s)", e.Rank, e.Status)
}

// worker is one started rank.
type worker struct {
	rank   int
	cmd    *exec.Cmd
	out    []*lineWriter // the prefixing writers of ranks above 0, flushed once it is reaped
	exited bool
	killed bool // by the launcher
}

// Run starts the store and the workers, forwards signals and watches the workers until every one
// has exited; then it closes the store. It returns nil when every worker exited 0, else an
// *ExitError, or an error starting the group (the workers started are killed first).
//
// Run keeps its goroutine locked to one OS thread until the workers are gone: PR_SET_PDEATHSIG
// fires when the thread that started a child exits, not the process, and the Go runtime ends a
// thread when a goroutine that locked it exits locked. Unlocked, the workers could be started from
// a thread that another goroutine locks and takes to its end, and be killed with it.
func (l *Launcher) Run() error {
	if l.NProc < 1 {
		return fmt.Errorf("distributed: a Launcher needs NProc >= 1 (got %d)", l.NProc)
	}
	if l.NNodes > 1 && (l.NodeRank < 0 || l.NodeRank >= l.NNodes || l.MasterAddr == "" || l.MasterPort < 1) {
		return fmt.Errorf("distributed: a Launcher of %d nodes needs NodeRank in [0, %d), MasterAddr and MasterPort (got %d, %q, %d)",
			l.NNodes, l.NNodes, l.NodeRank, l.MasterAddr, l.MasterPort)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	restore, err := blockNotices()
	if err != nil {
		return err
	}
	defer restore()
	addr, port := "127.0.0.1", l.MasterPort
	if l.NNodes > 1 {
		addr = l.MasterAddr
	}
	if l.NNodes <= 1 || l.NodeRank == 0 {
		store, err := l.Listen(l.Timeout)
		if err != nil {
			return fmt.Errorf("start the rendezvous store: %w", err)
		}
		defer store.Close()
		port = store.Port()
	}
	exits := make(chan *worker, l.NProc)
	ws := make([]*worker, 0, l.NProc)
	for local := range l.NProc {
		w, err := l.start(local, addr, port, exits)
		if err != nil {
			for _, w := range ws {
				_ = w.cmd.Process.Kill()
			}
			for range ws {
				<-exits
			}
			return err
		}
		ws = append(ws, w)
	}
	return l.watch(ws, exits)
}

// start starts this machine's worker local, whose exit is sent on exits once it is reaped; the
// store listens at addr:port.
func (l *Launcher) start(local int, addr string, port int, exits chan<- *worker) (*worker, error) {
	nodes, node := 1, 0
	if l.NNodes > 1 {
		nodes, node = l.NNodes, l.NodeRank
	}
	rank := node*l.NProc + local
	cmd := l.Command(rank)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, groupEnv(place{rank: rank, local: local, world: nodes * l.NProc, localWorld: l.NProc,
		node: node, addr: addr, port: port})...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	w := &worker{rank: rank, cmd: cmd}
	cmd.Stdout, cmd.Stderr = l.Stdout, l.Stderr
	if rank > 0 {
		prefix := "[rank " + strconv.Itoa(rank) + "] "
		w.out = []*lineWriter{{w: l.Stdout, prefix: prefix}, {w: l.Stderr, prefix: prefix}}
		cmd.Stdout, cmd.Stderr = w.out[0], w.out[1]
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker rank %d: %w", rank, err)
	}
	go func() {
		_ = cmd.Wait() // the status is read from cmd.ProcessState
		for _, o := range w.out {
			o.flush()
		}
		exits <- w
	}()
	return w, nil
}

// place is a worker's place in its group, as torchrun's variables say it.
type place struct {
	rank, local, world, localWorld, node int
	addr                                 string // where the store listens
	port                                 int
}

// groupEnv returns the variables of the worker at p, whose store (hosted by node 0's launcher)
// listens at p.addr:p.port.
func groupEnv(p place) []string {
	return []string{"RANK=" + strconv.Itoa(p.rank), "LOCAL_RANK=" + strconv.Itoa(p.local), "WORLD_SIZE=" + strconv.Itoa(p.world),
		"LOCAL_WORLD_SIZE=" + strconv.Itoa(p.localWorld), "GROUP_RANK=" + strconv.Itoa(p.node),
		"MASTER_ADDR=" + p.addr, "MASTER_PORT=" + strconv.Itoa(p.port),
		"TORCHELASTIC_USE_AGENT_STORE=True", "TORCHELASTIC_RESTART_COUNT=0"}
}

// watch forwards signals and reaps the workers until all have exited, killing those left Timeout
// + Grace after the first abnormal exit, and returns the group's result.
func (l *Launcher) watch(ws []*worker, exits <-chan *worker) error {
	var deadline <-chan time.Time
	var first *worker // the first to exit abnormally
	for live := len(ws); live > 0; {
		select {
		case w := <-exits:
			live--
			w.exited = true
			if w.cmd.ProcessState.Success() {
				continue
			}
			if !w.killed {
				fmt.Fprintf(l.Stderr, "launcher: rank %d: %s\n", w.rank, w.cmd.ProcessState)
			}
			if first == nil {
				first = w
				deadline = l.after(l.Timeout + Grace)
			}
		case sig := <-l.Signals:
			for _, w := range ws {
				if w.exited {
					continue
				}
				if err := w.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
					fmt.Fprintf(l.Stderr, "launcher: forward %s to rank %d: %v\n", sig, w.rank, err)
				}
			}
		case <-deadline:
			deadline = nil
			for _, w := range ws {
				if !w.exited && w.cmd.Process.Kill() == nil {
					w.killed = true
					fmt.Fprintf(l.Stderr, "launcher: rank %d did not exit within %s of rank %d's end (%s): killed it (SIGKILL)\n",
						w.rank, l.Timeout+Grace, first.rank, first.cmd.ProcessState)
				}
			}
		}
	}
	return groupResult(ws, first)
}

// groupResult returns nil when every worker of ws exited 0 (first is nil), else the group's
// *ExitError.
func groupResult(ws []*worker, first *worker) error {
	if first == nil {
		return nil
	}
	for _, w := range ws {
		ps := w.cmd.ProcessState
		if code := ps.ExitCode(); code != codes.ExitDone && code != codes.ExitPreempted && code != -1 {
			return &ExitError{Code: code, Rank: w.rank, Status: ps.String()}
		}
	}
	return &ExitError{Code: codes.ExitPreempted, Rank: first.rank, Status: first.cmd.ProcessState.String()}
}

func (l *Launcher) after(d time.Duration) <-chan time.Time {
	if l.After != nil {
		return l.After(d)
	}
	return time.After(d)
}
