package torch

// #include "shim.h"
import "C"

import "runtime"

// OptimizerConfig chooses and tunes an optimizer. The learning rate given here is the initial one;
// each training step passes the rate it uses (schedules are computed in Go).
type OptimizerConfig struct {
	Name         string // "adam", "adamw" or "sgd"
	LR           float64
	WeightDecay  float64
	Beta1, Beta2 float64 // adam, adamw
	Eps          float64 // adam, adamw
	Momentum     float64 // sgd
	Nesterov     bool    // sgd; needs Momentum > 0
	// Foreach chooses how SGD steps: with multi-tensor kernels, a few launches for all parameters
	// (as PyTorch's default on CUDA), or parameter by parameter (libtorch's torch::optim::SGD).
	// Both do the same arithmetic and keep the same state. ForeachAuto: multi-tensor on CUDA.
	Foreach Foreach
}

// Foreach is the choice of OptimizerConfig.Foreach.
type Foreach int

// The choices of OptimizerConfig.Foreach.
const (
	ForeachAuto Foreach = iota // multi-tensor on CUDA, per parameter on the CPU
	ForeachOn
	ForeachOff
)

// Optimizer updates one Net's parameters.
type Optimizer struct {
	p       C.Optim
	net     *Net // keeps the net alive as long as its optimizer
	cleanup runtime.Cleanup
}

var foreachFlags = map[Foreach]int{ForeachAuto: -1, ForeachOn: 1, ForeachOff: 0}

var optimKinds = map[string]C.int{"adam": C.OPTIM_ADAM, "adamw": C.OPTIM_ADAMW, "sgd": C.OPTIM_SGD}

// NewOptimizer builds an optimizer over all of net's parameters.
func NewOptimizer(net *Net, cfg OptimizerConfig) (*Optimizer, error) {
	const op = "new optimizer"
	if err := net.live(op); err != nil {
		return nil, err
	}
	kind, ok := optimKinds[cfg.Name]
	if !ok {
		return nil, errorf(op, "unknown optimizer %q (want adam, adamw or sgd)", cfg.Name)
	}
	var p C.Optim
	err := check(op, C.Optim_New(net.p, kind, C.double(cfg.LR), C.double(cfg.WeightDecay), C.double(cfg.Beta1),
		C.double(cfg.Beta2), C.double(cfg.Eps), C.double(cfg.Momentum), cbool(cfg.Nesterov), C.int(foreachFlags[cfg.Foreach]), &p))
	if err != nil {
		return nil, err
	}
	o := &Optimizer{p: p, net: net}
	o.cleanup = runtime.AddCleanup(o, func(p C.Optim) { C.Optim_Free(p) }, p)
	return o, nil
}

// Close releases the optimizer. It is safe to call more than once.
func (o *Optimizer) Close() error {
	if o.p != nil {
		o.cleanup.Stop()
		C.Optim_Free(o.p)
		o.p = nil
	}
	return nil
}
