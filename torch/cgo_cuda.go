//go:build cuda

package torch

// A CUDA build: the shim's process groups offer NCCL where nccl.h is found (group.cc).

// #cgo CPPFLAGS: -DSPOTTRAIN_CUDA
import "C"
