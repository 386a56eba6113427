package main

// When a notice can arrive. A process learns of a preemption notice by a signal (SIGTERM; SIGINT
// and SIGHUP are treated alike), which kills it by the default action until a handler is in
// place. Go installs its handlers when its runtime starts, but until signal.Notify asks for a
// signal, the runtime too kills the process on it; and the runtime starts only after every shared
// library's initializers: libtorch's take about 0.9 s on 2 cores, during which a SIGTERM used to
// kill the trainer (416 of 477 in a campaign of 3,259 interruptions).
//
// So preinit.c installs a handler that records the first of those signals, from the executable's
// .preinit_array: the first code of the process, after the dynamic loader has mapped and
// relocated the libraries. The Go runtime replaces it when it starts, and main, having taken the
// signals with signal.Notify, turns a recorded one into the first notice (earlyNotice). What is
// left uncovered is the loader's time before the .preinit_array, and the Go runtime's start and
// package initializers until main: measured in docs/benchmarks.md.

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
