package preemption

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"spottrain/codes"
	"spottrain/events"
)

// Runner runs a child command and interrupts it on a Schedule, restarting it until it is done.
type Runner struct {
	// Command makes a fresh, unstarted command for each start (an exec.Cmd runs once).
	Command func() *exec.Cmd
	// Schedule says when to interrupt the child; nil: never (an on-demand baseline, or a
	// supervisor that restarts a trainer preempted by someone else).
	Schedule *Schedule
	// Grace (SIGTERM to SIGKILL) is wall time: the trainer's emergency checkpoint takes real time
	// whatever the time scale. RestartDelay (re-provisioning a VM) is spot time, like the
	// Schedule's gaps.
	Grace, RestartDelay time.Duration
	TimeScale           float64 // spot seconds per wall second; 0 means 1
	// RanksPerMachine, above 0, makes the child a launcher of a group in which each simulated
	// machine of the Schedule runs this many workers: machine m's are those whose environment
	// says RANK=m*RanksPerMachine ... (m+1)*RanksPerMachine-1. An interrupt of machine m signals
	// those workers only (the child itself when none is found yet); the grace period's SIGKILL
	// still goes to the child. A child that exits 1 after one of its machines was interrupted is
	// started again too: a rank that dies while the group forms leaves the others unable to
	// form it. 0: every interrupt signals the child.
	RanksPerMachine int
	// OnEvent, if set, hears what happens, from Run's goroutine (see the package doc).
	OnEvent func(events.Payload)
	// After waits wall time; nil means time.After. Tests replace it to control time.
	After func(time.Duration) <-chan time.Time
}

// NewRunner validates c.WithDefaults() (errors are *FieldError) and returns a Runner for it: one
// that interrupts on c's Schedule, or never when its Pattern is none.
func NewRunner(c Config, command func() *exec.Cmd) (*Runner, error) {
	c = c.WithDefaults()
	s, err := c.Schedule()
	if err != nil {
		return nil, err
	}
	return &Runner{Command: command, Schedule: s, Grace: c.Grace, RestartDelay: c.RestartDelay, TimeScale: c.TimeScale}, nil
}

// ExitError is a child exit that ends the run as a failure: a code other than 0 and 75, or a
// death by a signal the Runner did not send.
type ExitError struct {
	Attempt int    // 0 for the first start
	Code    int    // -1 when killed by a signal
	Signal  string // the signal's name when killed by one
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("child (attempt %d) killed by signal %s that the runner did not send", e.Attempt, e.Signal)
	}
	return fmt.Sprintf("child (attempt %d) failed with exit code %d", e.Attempt, e.Code)
}

// Run starts the child and applies the schedule until the child exits 0 (nil), fails (an
// *ExitError or a start error) or ctx is cancelled: then it forwards SIGTERM, waits up to the
// unscaled Grace, sends SIGKILL if needed, and returns ctx.Err().
func (r *Runner) Run(ctx context.Context) error {
	if r.Command == nil {
		return errors.New("preemption: Runner needs a Command")
	}
	var last time.Duration // spot time of the previous interrupt
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err // also when the child exited on the same Ctrl+C: no restart
		}
		if attempt > 0 {
			r.emit(events.Restart{Attempt: attempt, DelayS: r.RestartDelay.Seconds()})
			select {
			case <-r.after(r.wall(r.RestartDelay)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		cmd := r.Command()
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start child (attempt %d): %w", attempt, err)
		}
		r.emit(events.ChildStart{Attempt: attempt, PID: cmd.Process.Pid})
		c := &child{cmd: cmd, done: make(chan struct{})}
		go func() {
			_ = cmd.Wait() // the exit status is read from cmd.ProcessState
			close(c.done)
		}()

		var it Interrupt
		var fire <-chan time.Time // nil: no interrupt
		if r.Schedule != nil {
			it = r.Schedule.Next()
			fire = r.after(r.wall(it.At - last))
			last = it.At
		}
		caused, cancelled, lostMachine := false, false, false
		select {
		case <-c.done:
		case <-fire:
			caused = r.interrupt(c, it)
			lostMachine = r.RanksPerMachine > 0
		case <-ctx.Done():
			cancelled = true
			caused = r.signal(c, syscall.SIGTERM, codes.Cancel, Interrupt{})
			caused = r.awaitOrKill(c, r.Grace) || caused
		}
		<-c.done

		code, sig := exitStatus(cmd.ProcessState)
		r.emit(events.ChildExit{PID: cmd.Process.Pid, Code: code, Signal: sig, Caused: caused})
		switch {
		case cancelled:
			return ctx.Err()
		case code == 0:
			return nil
		case !restartable(code, sig, caused, lostMachine):
			return &ExitError{Attempt: attempt, Code: code, Signal: sig}
		}
	}
}

// restartable reports whether a child's end (code, or the signal sig; caused: the runner
// signalled it; lostMachine: it interrupted one of its machines) is an interruption to restart
// after, not a failure: exit 75, a death by a signal the runner sent, or exit 1 after a machine
// was interrupted (the ranks of a group that lost one while it formed fail to join it).
func restartable(code int, sig string, caused, lostMachine bool) bool {
	return code == codes.ExitPreempted || sig != "" && caused || code == codes.ExitFailure && lostMachine && caused
}

type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child is reaped
}

// interrupt applies the scheduled interrupt it to c: a notice (SIGTERM, and SIGKILL to c after
// the grace period) or a kill, to the workers of its machine when RanksPerMachine says which
// they are and they are found, else to c. It reports the interrupt once, with the pid of the
// first process signalled, and whether it signalled anything.
func (r *Runner) interrupt(c *child, it Interrupt) bool {
	sig := syscall.SIGKILL
	if it.Notice {
		sig = syscall.SIGTERM
	}
	var pids []int
	if r.RanksPerMachine > 0 {
		pids = machinePIDs(c.cmd.Process.Pid, it.Machine, r.RanksPerMachine)
	}
	caused := false
	if len(pids) == 0 {
		caused = r.signal(c, sig, codes.Schedule, it)
	}
	for _, pid := range pids {
		if r.kill(pid, sig) && !caused {
			caused = true
			r.sent(pid, sig, codes.Schedule, it)
		}
	}
	if it.Notice {
		caused = r.awaitOrKill(c, r.Grace) || caused
	}
	return caused
}

// signal sends sig to c and reports it, with it the scheduled interrupt (zero: none); false if
// the child had already exited.
func (r *Runner) signal(c *child, sig syscall.Signal, reason codes.InterruptReason, it Interrupt) bool {
	if err := c.cmd.Process.Signal(sig); err != nil {
		if !errors.Is(err, os.ErrProcessDone) {
			r.emit(events.SignalFailed{PID: c.cmd.Process.Pid, Signal: sig.String(), Error: err.Error()})
		}
		return false
	}
	r.sent(c.cmd.Process.Pid, sig, reason, it)
	return true
}

// kill sends sig to the worker pid; false if it could not (a worker gone meanwhile, or another
// failure, which it reports).
func (r *Runner) kill(pid int, sig syscall.Signal) bool {
	if err := syscall.Kill(pid, sig); err != nil {
		if err != syscall.ESRCH {
			r.emit(events.SignalFailed{PID: pid, Signal: sig.String(), Error: err.Error()})
		}
		return false
	}
	return true
}

// sent reports that sig went to pid.
func (r *Runner) sent(pid int, sig syscall.Signal, reason codes.InterruptReason, it Interrupt) {
	kind := codes.Notice
	if sig == syscall.SIGKILL {
		kind = codes.Kill
	}
	r.emit(events.InterruptSent{Kind: kind, Reason: reason, PID: pid, AtSpotS: it.At.Seconds(), Machine: it.Machine})
}

// awaitOrKill waits up to grace (wall time) for c to exit, then sends SIGKILL; it reports
// whether it sent one.
func (r *Runner) awaitOrKill(c *child, grace time.Duration) bool {
	select {
	case <-c.done:
		return false
	case <-r.after(grace):
		return r.signal(c, syscall.SIGKILL, codes.Grace, Interrupt{})
	}
}

func exitStatus(ps *os.ProcessState) (code int, signal string) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal().String()
	}
	return ps.ExitCode(), ""
}

func (r *Runner) wall(spot time.Duration) time.Duration {
	if r.TimeScale == 0 {
		return spot
	}
	return time.Duration(float64(spot) / r.TimeScale)
}

func (r *Runner) after(d time.Duration) <-chan time.Time {
	if r.After != nil {
		return r.After(d)
	}
	return time.After(d)
}

func (r *Runner) emit(p events.Payload) {
	if r.OnEvent != nil {
		r.OnEvent(p)
	}
}
