// Package torch is spottrain's bridge to libtorch: a small C shim (shim.h, shim.cc) and its Go face.
// It is the only package that uses cgo.
//
// Guarantees:
//   - No C++ exception crosses into Go: every libtorch failure (a wrong shape, an unknown device, an
//     out-of-memory) comes back as an *Error, and the process goes on.
//   - Inputs are checked in Go before they reach C++: a host tensor whose data does not fill its
//     shape is an error, never an out-of-bounds read.
//   - Handles (*Net, *Optimizer) are released by Close, which is safe to call more than once; a
//     cleanup attached with runtime.AddCleanup only backstops a forgotten Close.
//   - A training step is one cgo call and does not wait for the device; the loss is read back only
//     when asked (Net.TakeLoss).
//
// A Net and its Optimizer are not safe for concurrent use: one goroutine trains a model.
package torch

// #cgo CXXFLAGS: -std=c++17 -O2
// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"fmt"
	"strings"
	"unsafe"
)

// Error is a failure reported by libtorch or by the shim's own checks.
type Error struct {
	Op  string // the operation, e.g. "train step"
	Msg string // libtorch's message, on one line
}

func (e *Error) Error() string { return "torch: " + e.Op + ": " + e.Msg }

// check turns the shim's returned message (nil means success) into an error and frees it.
func check(op string, msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return &Error{Op: op, Msg: oneLine(C.GoString(msg))}
}

// oneLine joins the non-empty lines of a libtorch message with "; ".
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

func errorf(op, format string, args ...any) error {
	return &Error{Op: op, Msg: fmt.Sprintf(format, args...)}
}

// Version returns the version of the libtorch the program is linked with, e.g. "1.13.0".
func Version() string {
	var out *C.char
	if err := check("version", C.Torch_Version(&out)); err != nil {
		return "unknown"
	}
	defer C.free(unsafe.Pointer(out))
	return C.GoString(out)
}

// SetNumThreads sets libtorch's intra-op thread count; n <= 0 leaves libtorch's default. With
// OpenBLAS (Debian's libtorch) it also makes BLAS single-threaded inside libtorch's threads, unless
// OPENBLAS_NUM_THREADS is set.
func SetNumThreads(n int) {
	if n > 0 {
		C.Torch_SetNumThreads(C.int(n))
	}
}

// NumThreads returns libtorch's intra-op thread count.
func NumThreads() int { return int(C.Torch_GetNumThreads()) }

// ManualSeed seeds libtorch's generators (CPU and every CUDA device): parameter initialisation and
// dropout draw from them.
func ManualSeed(seed uint64) { C.Torch_ManualSeed(C.uint64_t(seed)) }

// SetDeterministic makes libtorch use deterministic algorithms only (and cuDNN deterministic, with
// its benchmark mode off) when on is true.
func SetDeterministic(on bool) error {
	return check("set deterministic", C.Torch_SetDeterministic(cbool(on)))
}
