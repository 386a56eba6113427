package distributed

import (
	"fmt"
	"syscall"
	"unsafe"
)

// The how of rt_sigprocmask (linux/signal.h).
const (
	sigBlock   = 0
	sigSetMask = 2
)

// noticeMask is the set of the notice signals (SIGTERM, SIGINT, SIGHUP) as the kernel's sigset_t
// of rt_sigprocmask: bit sig-1 for each.
const noticeMask = 1<<(syscall.SIGTERM-1) | 1<<(syscall.SIGINT-1) | 1<<(syscall.SIGHUP-1)

// blockNotices blocks the notice signals on the calling thread, which must be locked to its
// goroutine, and returns what restores the thread's mask. A child begins with the mask of the
// thread that forks it (the Go runtime saves it just before the fork), so a worker started with
// them blocked keeps a notice forwarded while its dynamic loader runs pending, for the handler
// that spottrain installs first thing (cmd/spottrain/preinit.c), instead of dying of it. The
// process still gets its own signals: the kernel hands them to another of its threads.
func blockNotices() (restore func(), err error) {
	set, old := uint64(noticeMask), uint64(0)
	if err := sigprocmask(sigBlock, &set, &old); err != nil {
		return nil, fmt.Errorf("block the notice signals: %w", err)
	}
	return func() { _ = sigprocmask(sigSetMask, &old, nil) }, nil
}

// sigprocmask is rt_sigprocmask(2) on the calling thread, with an 8-byte sigset_t.
func sigprocmask(how int, set, old *uint64) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, uintptr(how), uintptr(unsafe.Pointer(set)),
		uintptr(unsafe.Pointer(old)), unsafe.Sizeof(*set), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
