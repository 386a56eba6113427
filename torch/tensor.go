package torch

// #include "shim.h"
import "C"

import "unsafe"

// Host is a dense, row-major tensor in Go memory: the way batches go into libtorch and outputs come
// back. libtorch reads it only during the call it is passed to and keeps no reference.
type Host struct {
	ptr   unsafe.Pointer
	len   int
	dtype C.int
	shape []int64
}

// Float32s views data as a float32 tensor of the given shape.
func Float32s(data []float32, shape ...int64) Host {
	return Host{ptr: unsafe.Pointer(unsafe.SliceData(data)), len: len(data), dtype: C.DTYPE_FLOAT32, shape: shape}
}

// Int64s views data as an int64 tensor of the given shape (class labels).
func Int64s(data []int64, shape ...int64) Host {
	return Host{ptr: unsafe.Pointer(unsafe.SliceData(data)), len: len(data), dtype: C.DTYPE_INT64, shape: shape}
}

// Shape returns the tensor's dimensions.
func (h Host) Shape() []int64 { return h.shape }

// validate checks that the data fills the shape exactly, so that C++ never reads past it.
func (h Host) validate(op, what string) error {
	if len(h.shape) == 0 {
		return errorf(op, "%s has no shape", what)
	}
	n := int64(1)
	for _, d := range h.shape {
		if d <= 0 {
			return errorf(op, "%s shape %v has a dimension <= 0", what, h.shape)
		}
		n *= d
	}
	if n != int64(h.len) {
		return errorf(op, "%s shape %v needs %d elements, data has %d", what, h.shape, n, h.len)
	}
	return nil
}

// cShape returns a pointer to the shape and its rank, for a shim call.
func (h Host) cShape() (*C.int64_t, C.int) {
	return (*C.int64_t)(unsafe.Pointer(unsafe.SliceData(h.shape))), C.int(len(h.shape))
}
