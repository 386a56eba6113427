// Package codes holds the words that the trainer (train), the runner that interrupts it
// (preemption), the checkpoint store (checkpoint), the event log (events) and the analysis of
// runs (analysis) share: exit statuses, interrupt kinds and reasons, checkpoint reasons. They are
// written in event logs and manifests, so their values never change. It imports nothing.
package codes

// Exit statuses of a training process.
const (
	ExitDone     = 0
	ExitFailure  = 1
	ExitBadInput = 2 // a config, data file or device problem: starting again does not help
	// ExitPreempted (EX_TEMPFAIL) is the status after an emergency checkpoint on a notice: start
	// the trainer again and it resumes.
	ExitPreempted = 75
)

// InterruptKind is how the runner interrupted a trainer.
type InterruptKind string

// The interrupt kinds.
const (
	Notice InterruptKind = "notice" // SIGTERM: the trainer writes an emergency checkpoint and exits 75
	Kill   InterruptKind = "kill"   // SIGKILL: no notice, the work since the last checkpoint is lost
)

// InterruptReason is why the runner interrupted a trainer.
type InterruptReason string

// The interrupt reasons.
const (
	Schedule InterruptReason = "schedule" // the interrupt pattern said so: an interruption of the spot job
	Grace    InterruptReason = "grace"    // the trainer outlived the grace period after a notice
	Cancel   InterruptReason = "cancel"   // the runner itself was stopped (Ctrl+C)
)

// CheckpointReason is why a checkpoint was taken.
type CheckpointReason string

// The checkpoint reasons.
const (
	Periodic  CheckpointReason = "periodic"  // the checkpoint strategy asked for it
	Emergency CheckpointReason = "emergency" // written on a preemption notice, before exiting
	Final     CheckpointReason = "final"     // written at the end of training
	Milestone CheckpointReason = "milestone" // the validation metric improved (the milestone strategy)
)
