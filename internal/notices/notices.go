// Package notices takes the notice signals of the process (SIGTERM, SIGINT, SIGHUP) earlier than
// main could: in its init, which depends on os/signal alone and so runs before most of the
// program's package initializers (about 15 ms after the Go runtime starts, and 15 to 60 ms before
// main, on 2 cores). From then on such a signal is queued on Signals, never a death by the
// default action. A go test binary (named *.test, or
// given -test.* flags) is left alone: there, the signals stay go test's.
package notices

import (
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

var signals = make(chan os.Signal, 4)

func init() {
	if testBinary(os.Args) {
		return
	}
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
}

// testBinary reports whether args are those of a go test binary.
func testBinary(args []string) bool {
	if len(args) == 0 {
		return false
	}
	if strings.HasSuffix(filepath.Base(args[0]), ".test") {
		return true
	}
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "-test.") {
			return true
		}
	}
	return false
}

// Signals carries the notice signals that came since the process's package initializers ran (a
// buffer of 4; later ones are dropped while it is full). A go test binary gets none.
func Signals() <-chan os.Signal { return signals }
