package train

import (
	"errors"
	"fmt"
	"time"

	"spottrain/codes"
	"spottrain/configs"
	"spottrain/data/solar"
)

// ErrAbandoned is the error of an evaluation that its caller abandoned (a notice came).
var ErrAbandoned = errors.New("evaluation abandoned")

// InputError marks an error caused by what the user gave (a device this machine lacks, a data file
// that is missing, malformed or too short, a run dir made with another config), as opposed to a
// failure while running. Its message is the wrapped error's.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// PreemptedError reports a run stopped by a notice with every step it did saved: by the loop after
// its emergency checkpoint, or by the job between its phases with nothing new to save.
type PreemptedError struct {
	Notice Notice
	Step   int    // steps done, all saved; -1: not known (the run dir was not opened)
	Phase  string // the phase the notice stopped; "": the training loop
}

func (e *PreemptedError) Error() string {
	took := time.Since(e.Notice.At).Round(time.Millisecond)
	switch {
	case e.Phase == "":
		return fmt.Sprintf("stopped by %s at step %d after an emergency checkpoint (%s after the notice); start again to resume",
			e.Notice.Signal, e.Step, took)
	case e.Step < 0:
		return fmt.Sprintf("stopped by %s during %s, before the run dir was opened (%s after the notice); start again to resume",
			e.Notice.Signal, e.Phase, took)
	default:
		return fmt.Sprintf("stopped by %s during %s at step %d, every step saved (%s after the notice); start again to resume",
			e.Notice.Signal, e.Phase, e.Step, took)
	}
}

// ExitCode maps the error of Run to the process's exit status: 0 done, 75 preempted or a peer of
// the group lost (start again), rank 0's status for another rank of a run rank 0 did not start,
// 2 bad input (a config, data file or device problem), 1 anything else.
func ExitCode(err error) int {
	var pe *PreemptedError
	var ie *InputError
	var ce *configs.Error
	var se *solar.ParseError
	var pl *PeerLostError
	var el *errLeader
	var rg *RegroupError
	switch {
	case err == nil:
		return codes.ExitDone
	case errors.As(err, &el):
		return el.code
	case errors.As(err, &pe), errors.As(err, &pl), errors.As(err, &rg):
		return codes.ExitPreempted
	case errors.As(err, &ie), errors.As(err, &ce), errors.As(err, &se):
		return codes.ExitBadInput
	default:
		return codes.ExitFailure
	}
}
