//go:build !cuda && !libtorch

package torch

// Default build: Debian's libtorch-dev (1.13, CPU) at the system paths. Build with -tags libtorch
// (any libtorch) or -tags cuda (a CUDA libtorch) and CGO_CPPFLAGS / CGO_LDFLAGS pointing at it
// instead: the Makefile derives them from LIBTORCH=/path.

// #cgo CPPFLAGS: -I/usr/include/torch/csrc/api/include
// #cgo LDFLAGS: -ltorch -ltorch_cpu -lc10
import "C"
