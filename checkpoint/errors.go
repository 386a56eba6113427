package checkpoint

import (
	"errors"
	"fmt"
)

var (
	// ErrLocked is wrapped by the error of Open when another Store, in this process or another,
	// holds the run directory.
	ErrLocked = errors.New("run dir is in use by another trainer")

	// ErrNoCheckpoint is wrapped by the error of Store.Latest when the run directory holds no
	// valid checkpoint.
	ErrNoCheckpoint = errors.New("no valid checkpoint")

	// ErrRetention is wrapped by the error of Pending.Commit when the checkpoint was committed and
	// is durable (Commit also returns it) but deleting older checkpoints failed; whatever was not
	// deleted is retried by later commits or removed by Store.Latest.
	ErrRetention = errors.New("deleting old checkpoints failed")

	// ErrNotFound is wrapped by the error of Remote.Get when the remote has no such file.
	ErrNotFound = errors.New("not found")
)

// lockedError names the run directory and the holder's pid; it wraps ErrLocked.
type lockedError struct {
	dir    string
	holder string // "pid 1234", or "pid unknown" when the lock file holds no pid yet
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("run dir %s is in use by another trainer (%s)", e.dir, e.holder)
}

func (e *lockedError) Unwrap() error { return ErrLocked }

// invalidError says that a checkpoint directory is proven invalid (wrong or missing content), as
// opposed to unreadable (a permission or I/O error): only the former may be removed.
type invalidError struct{ reason string }

func (e *invalidError) Error() string { return e.reason }

func invalidf(format string, args ...any) error {
	return &invalidError{reason: fmt.Sprintf(format, args...)}
}
