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
// --nproc-per-node N` does, and sees it to its end. It guarantees:
//
//   - Each worker i gets the parent's environment plus RANK=i, LOCAL_RANK=i, WORLD_SIZE=N,
//     LOCAL_WORLD_SIZE=N, GROUP_RANK=0, MASTER_ADDR=127.0.0.1, MASTER_PORT (the store's port),
//     TORCHELASTIC_USE_AGENT_STORE=True and TORCHELASTIC_RESTART_COUNT=0 (so FromEnv reads it).
//   - Workers run in a process group of their own, so that a terminal's Ctrl+C reaches only the
//     launcher; every signal from Signals is forwarded to every live worker.
//   - A launcher that dies, even by SIGKILL, takes its workers with it (PR_SET_PDEATHSIG).
//   - Rank 0's output goes to Stdout and Stderr as it is; the other ranks' lines are prefixed
//     "[rank N] ", written in whole lines (never a part of one).
//   - Once a worker ends abnormally (a status other than 0, or a signal), the others have Timeout
//     plus Grace to exit; those left (frozen, or blocked for good) are then SIGKILLed. Nothing
//     hangs.
//   - Every abnormal exit and every kill is one line on Stderr naming the rank.
//   - The store is closed once every worker has exited.
type Launcher struct {
	NProc int // workers, >= 1
	// Command makes worker rank's unstarted command. The Launcher adds the group's variables to
	// its Env (the parent's environment when nil) and sets its output and SysProcAttr.
	Command func(rank int) *exec.Cmd
	// Listen starts the rendezvous store (torch.NewStoreServer); timeout bounds its waits.
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
// Run keeps its goroutine on one OS thread: PR_SET_PDEATHSIG fires when the thread that started a
// child exits, not the process, and the Go runtime ends a thread whose goroutine exits locked to
// it. Holding the starting thread until the workers are gone keeps them from being killed early.
func (l *Launcher) Run() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	store, err := l.Listen(l.Timeout)
	if err != nil {
		return fmt.Errorf("start the rendezvous store: %w", err)
	}
	defer store.Close()
	exits := make(chan *worker, l.NProc)
	ws := make([]*worker, 0, l.NProc)
	for rank := range l.NProc {
		w, err := l.start(rank, store.Port(), exits)
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

// start starts worker rank, whose exit is sent on exits once it is reaped.
func (l *Launcher) start(rank, port int, exits chan<- *worker) (*worker, error) {
	cmd := l.Command(rank)
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, groupEnv(rank, l.NProc, port)...)
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

// groupEnv returns the variables of worker rank of a group of world on this machine, whose
// store (hosted by the launcher) listens on port.
func groupEnv(rank, world, port int) []string {
	r, n := strconv.Itoa(rank), strconv.Itoa(world)
	return []string{"RANK=" + r, "LOCAL_RANK=" + r, "WORLD_SIZE=" + n, "LOCAL_WORLD_SIZE=" + n, "GROUP_RANK=0",
		"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + strconv.Itoa(port),
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
