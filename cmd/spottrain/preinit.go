package main

// When a notice can arrive. A process learns of a preemption notice by a signal (SIGTERM; SIGINT
// and SIGHUP are treated alike), which kills it by the default action until a handler is in
// place. Go installs its handlers when its runtime starts, but until signal.Notify asks for a
// signal, the runtime too kills the process on it; and the runtime starts only after the dynamic
// loader has mapped and relocated libtorch (about 0.4 s on 2 cores) and libtorch's initializers
// have run (about 0.5 s more). A SIGTERM in that second used to kill the trainer (416 of 477 in a
// campaign of 3,259 interruptions).
//
// So, from the first to the last:
//   - preinit.c, from the executable's .preinit_array (the first code of the process, once the
//     loader is done), installs a handler that records the first of those signals, and blocks
//     them. The Go runtime unblocks them when it starts (a pending one goes to that handler), then
//     replaces the handler with its own; main turns a recorded signal into the first notice
//     (earlyNotice).
//   - internal/notices takes them with signal.Notify in its init, about 15 ms after the runtime
//     starts (before main by another 15 to 60 ms of package initializers); main forwards them.
//   - The runtime keeps the blocked mask it found for the children it starts: a trainer started
//     by `spottrain run` begins with them blocked, so that one sent while its own loader runs
//     waits, pending, for its handler.
//
// What is left: the loader's time of a process whose parent did not block them (a shell, a
// container runtime), and the ~15 ms between the runtime's start and internal/notices' init.
// Measured by scripts/bench/notice-window.sh (docs/benchmarks.md).

// #include "preinit.h"
import "C"

import (
	"os"
	"syscall"
	"time"
)

// earlyNotice returns the notice signal that came before the Go runtime started, and when; nil if
// none came.
func earlyNotice() (os.Signal, time.Time) {
	var sec C.longlong
	var nsec C.long
	sig := C.earlyNotice(&sec, &nsec)
	if sig == 0 {
		return nil, time.Time{}
	}
	return syscall.Signal(sig), time.Unix(int64(sec), int64(nsec))
}
