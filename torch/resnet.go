package torch

// #include <stdlib.h>
// #include "shim.h"
import "C"

import "unsafe"

// ResNetConfig shapes a ResNet: [batch, 3, H, W] images -> [batch, Classes] logits.
type ResNetConfig struct {
	Depth     int     // 18, 34 (basic blocks), 50 or 101 (bottlenecks)
	Classes   int     // output classes
	CIFARStem bool    // 3x3 stride-1 first convolution and no max-pool (32x32 images); else ImageNet's
	ZeroInit  bool    // zero-initialise the last BatchNorm of each residual block
	Width     float64 // channel multiplier of every layer; 1 is the standard network
}

// NewResNet builds the ResNet on dev, with torchvision's state_dict names and initialisation
// (Kaiming-normal convolutions), from libtorch's generator. Its loss is cross-entropy against
// int64 class indices (see Net.SetOptions for label smoothing).
func NewResNet(cfg ResNetConfig, dev Device) (*Net, error) {
	cs := C.CString(string(dev))
	defer C.free(unsafe.Pointer(cs))
	var p C.Net
	err := check("new ResNet", C.Net_NewResNet(C.int64_t(cfg.Depth), C.int64_t(cfg.Classes), cbool(cfg.CIFARStem),
		cbool(cfg.ZeroInit), C.double(cfg.Width), cs, &p))
	if err != nil {
		return nil, err
	}
	return newNet(p, dev), nil
}

// NetOptions tune how a net trains and evaluates.
type NetOptions struct {
	LabelSmoothing float64 // cross-entropy label smoothing, in [0, 1)
	BF16           bool    // bfloat16 autocast in forward passes (CUDA only), as torch.autocast
	ChannelsLast   bool    // NHWC memory format for images and convolution weights
}

// SetOptions applies opts; an option the net's device cannot honour (bf16 on the CPU) is an error.
func (n *Net) SetOptions(opts NetOptions) error {
	const op = "net options"
	if err := n.live(op); err != nil {
		return err
	}
	return check(op, C.Net_SetOptions(n.p, C.double(opts.LabelSmoothing), cbool(opts.BF16), cbool(opts.ChannelsLast)))
}

// SetCudnnBenchmark lets cuDNN time its algorithms and keep the fastest for each shape (a no-op
// without CUDA).
func SetCudnnBenchmark(on bool) { C.Torch_SetCudnnBenchmark(cbool(on)) }

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}
