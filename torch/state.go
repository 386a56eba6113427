package torch

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"runtime"
	"unsafe"
)

// takeBuffer copies a malloc'd shim buffer into Go memory and frees it.
func takeBuffer(data unsafe.Pointer, n C.int64_t) []byte {
	defer C.free(data)
	return C.GoBytes(data, C.int(n))
}

// pass returns a pointer to b's first byte for a shim call (nil for an empty slice).
func pass(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// Snapshot is a frozen copy, in host memory, of what a checkpoint saves: a net's parameters and
// buffers, its optimizer's state and libtorch's generator states. Taking it is the only part of a
// checkpoint that blocks training; serializing it (Model, Optimizer, RNG) may run in another
// goroutine while training goes on. Close releases it.
type Snapshot struct {
	p       C.Snapshot
	cleanup runtime.Cleanup
}

// TakeSnapshot copies the state of net, opt and the generators.
func TakeSnapshot(net *Net, opt *Optimizer) (*Snapshot, error) {
	const op = "snapshot"
	if err := net.live(op); err != nil {
		return nil, err
	}
	if opt == nil || opt.p == nil {
		return nil, errorf(op, "optimizer is nil or closed")
	}
	var p C.Snapshot
	if err := check(op, C.Snapshot_New(net.p, opt.p, &p)); err != nil {
		return nil, err
	}
	s := &Snapshot{p: p}
	s.cleanup = runtime.AddCleanup(s, func(p C.Snapshot) { C.Snapshot_Free(p) }, p)
	return s, nil
}

// Model serializes the parameters and buffers (torch serialization), for Net.LoadState.
func (s *Snapshot) Model() ([]byte, error) { return s.serialize("model", C.SNAPSHOT_MODEL) }

// Optimizer serializes the optimizer state, for Optimizer.LoadState.
func (s *Snapshot) Optimizer() ([]byte, error) { return s.serialize("optimizer", C.SNAPSHOT_OPTIM) }

// RNG serializes the generator states, for LoadRNG.
func (s *Snapshot) RNG() ([]byte, error) { return s.serialize("RNG", C.SNAPSHOT_RNG) }

func (s *Snapshot) serialize(what string, which C.int) ([]byte, error) {
	op := "serialize " + what + " state"
	if s.p == nil {
		return nil, errorf(op, "snapshot is closed")
	}
	var data unsafe.Pointer
	var size C.int64_t
	if err := check(op, C.Snapshot_Serialize(s.p, which, &data, &size)); err != nil {
		return nil, err
	}
	return takeBuffer(data, size), nil
}

// Close releases the snapshot. It is safe to call more than once.
func (s *Snapshot) Close() error {
	if s.p != nil {
		s.cleanup.Stop()
		C.Snapshot_Free(s.p)
		s.p = nil
	}
	return nil
}

// LoadState restores parameters and buffers serialized by Snapshot.Model, on whatever device
// they were saved.
// Every tensor of the model must be in state with its shape.
func (n *Net) LoadState(state []byte) error {
	const op = "load model state"
	if err := n.live(op); err != nil {
		return err
	}
	return check(op, C.Net_LoadState(n.p, pass(state), C.int64_t(len(state))))
}

// LoadState restores state serialized by Snapshot.Optimizer onto the optimizer's device.
func (o *Optimizer) LoadState(state []byte) error {
	const op = "load optimizer state"
	if o.p == nil {
		return errorf(op, "optimizer is closed")
	}
	return check(op, C.Optim_LoadState(o.p, pass(state), C.int64_t(len(state))))
}

// RNGState serializes the generators' states, as Snapshot.RNG does, without a snapshot of a model.
func RNGState() ([]byte, error) {
	var data unsafe.Pointer
	var n C.int64_t
	if err := check("save RNG state", C.Torch_SaveRNG(&data, &n)); err != nil {
		return nil, err
	}
	return takeBuffer(data, n), nil
}

// LoadRNG restores generator states serialized by Snapshot.RNG. CUDA states that this machine has no device
// for are ignored.
func LoadRNG(state []byte) error {
	return check("load RNG state", C.Torch_LoadRNG(pass(state), C.int64_t(len(state))))
}

// DType names an element type as safetensors does.
type DType string

// Element types of exported tensors.
const (
	F32  DType = "F32"
	F64  DType = "F64"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
)

var dtypes = map[C.int]DType{C.DTYPE_FLOAT32: F32, C.DTYPE_INT64: I64, C.DTYPE_FLOAT64: F64, C.DTYPE_FLOAT16: F16, C.DTYPE_BFLOAT16: BF16}

// Tensor is a copy of one named tensor of a model's state, on the host.
type Tensor struct {
	Name  string  // as in a PyTorch state_dict, e.g. "lstm.weight_ih_l0"
	DType DType   // element type
	Shape []int64 // dimensions
	Data  []byte  // little-endian, row-major
}

// StateTensors copies every parameter and buffer of the model to the host, in state_dict order.
func (n *Net) StateTensors() ([]Tensor, error) {
	const op = "state tensors"
	if err := n.live(op); err != nil {
		return nil, err
	}
	var count C.int64_t
	if err := check(op, C.Net_StateCount(n.p, &count)); err != nil {
		return nil, err
	}
	out := make([]Tensor, count)
	for i := range out {
		var name *C.char
		var dtype, ndim C.int
		var shape [8]C.int64_t
		if err := check(op, C.Net_StateInfo(n.p, C.int64_t(i), &name, &dtype, &shape[0], &ndim)); err != nil {
			return nil, err
		}
		t := Tensor{Name: C.GoString(name), DType: dtypes[dtype]}
		C.free(unsafe.Pointer(name))
		size := int64(t.DType.Size())
		for d := 0; d < int(ndim); d++ {
			t.Shape = append(t.Shape, int64(shape[d]))
			size *= int64(shape[d])
		}
		t.Data = make([]byte, size)
		if err := check(op, C.Net_StateCopy(n.p, C.int64_t(i), pass(t.Data), C.int64_t(size))); err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

// Size returns the bytes of one element.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	default:
		return 8
	}
}
