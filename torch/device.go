package torch

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"strings"
	"unsafe"
)

// Device names where tensors live: "cpu", "cuda" (the current CUDA device) or "cuda:N".
type Device string

// CPU is the host.
const CPU Device = "cpu"

// IsCUDA reports whether d is a CUDA device.
func (d Device) IsCUDA() bool { return strings.HasPrefix(string(d), "cuda") }

// CUDADeviceCount returns how many CUDA devices libtorch sees: 0 with a CPU-only libtorch.
func CUDADeviceCount() int { return int(C.Torch_CudaDeviceCount()) }

// ParseDevice resolves a device name: "auto" is "cuda" when a CUDA device is present and "cpu"
// otherwise; "cpu", "cuda" and "cuda:N" must exist on this machine and in this build.
func ParseDevice(name string) (Device, error) {
	if name == "auto" {
		if CUDADeviceCount() > 0 {
			return "cuda", nil
		}
		return CPU, nil
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	if err := check("device", C.Torch_CheckDevice(cs)); err != nil {
		return "", err
	}
	return Device(name), nil
}
