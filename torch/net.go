package torch

// #include <stdlib.h>
// #include "shim.h"
import "C"

import (
	"runtime"
	"unsafe"
)

// Net is a model on one device, with its loss function and a running sum of training losses kept
// on that device.
type Net struct {
	p       C.Net
	device  Device
	cleanup runtime.Cleanup
}

// LSTMConfig shapes the LSTM forecaster: [batch, steps, Inputs] -> [batch, Horizon].
type LSTMConfig struct {
	Inputs  int     // features per time step
	Hidden  int     // LSTM hidden size
	Layers  int     // stacked LSTM layers
	Dropout float64 // between LSTM layers and before the linear head, in [0, 1)
	Horizon int     // values forecast per window
	// StepHead forecasts value j from the output of step steps-Horizon+j (one Linear(hidden, 1)
	// shared by them), not all of them from the last step's (Linear(hidden, Horizon)).
	StepHead bool
	// Loss is "" for the mean squared error against targets [batch, Horizon], or the forecast
	// loss "mse", "mae" or "huber" (quadratic below HuberDelta) of a·output + b against c, for
	// targets [batch, 3, Horizon] holding a, b and c (see solar.Windows.Y).
	Loss       string
	HuberDelta float64
}

// forecastLosses maps LSTMConfig.Loss to the shim's loss kinds.
var forecastLosses = map[string]C.int{"": 0, "mse": 2, "mae": 3, "huber": 4}

// NewLSTM builds the LSTM forecaster on dev, initialised from libtorch's generator (see
// ManualSeed).
func NewLSTM(cfg LSTMConfig, dev Device) (*Net, error) {
	loss, ok := forecastLosses[cfg.Loss]
	if !ok {
		return nil, errorf("new LSTM", "unknown loss %q (mse, mae or huber)", cfg.Loss)
	}
	delta := cfg.HuberDelta
	if cfg.Loss != "huber" {
		delta = 1
	}
	cs := C.CString(string(dev))
	defer C.free(unsafe.Pointer(cs))
	var p C.Net
	err := check("new LSTM", C.Net_NewLSTM(C.int64_t(cfg.Inputs), C.int64_t(cfg.Hidden), C.int64_t(cfg.Layers),
		C.double(cfg.Dropout), C.int64_t(cfg.Horizon), cbool(cfg.StepHead), loss, C.double(delta), cs, &p))
	if err != nil {
		return nil, err
	}
	return newNet(p, dev), nil
}

func newNet(p C.Net, dev Device) *Net {
	n := &Net{p: p, device: dev}
	n.cleanup = runtime.AddCleanup(n, func(p C.Net) { C.Net_Free(p) }, p)
	return n
}

// Close releases the model. It is safe to call more than once.
func (n *Net) Close() error {
	if n.p != nil {
		n.cleanup.Stop()
		C.Net_Free(n.p)
		n.p = nil
	}
	return nil
}

// Device returns where the model lives.
func (n *Net) Device() Device { return n.device }

func (n *Net) live(op string) error {
	if n.p == nil {
		return errorf(op, "net is closed")
	}
	return nil
}

// NumParams returns the number of trainable and frozen parameter elements.
func (n *Net) NumParams() int64 {
	if n.p == nil {
		return 0
	}
	return int64(C.Net_NumParams(n.p))
}

// Forward runs the model in eval mode without autograd and writes its output into out, which must
// hold exactly as many elements as the output has.
func (n *Net) Forward(x Host, out []float32) error {
	const op = "forward"
	if err := n.live(op); err != nil {
		return err
	}
	if err := x.validate(op, "input"); err != nil {
		return err
	}
	if len(out) == 0 {
		return errorf(op, "empty output buffer")
	}
	xs, xd := x.cShape()
	return check(op, C.Net_Forward(n.p, (*C.float)(x.ptr), xs, xd,
		(*C.float)(unsafe.Pointer(unsafe.SliceData(out))), C.int64_t(len(out))))
}

// TrainStep runs one training step in a single call into libtorch: zero the gradients, forward x,
// loss against y, backward, clip the gradients' global L2 norm to clip (0 = no clipping), and an
// optimizer step at learning rate lr. It does not wait for the device.
func (n *Net) TrainStep(opt *Optimizer, x, y Host, lr, clip float64) error {
	return n.trainSteps("train step", opt, x, y, lr, clip, 1, 1, nil)
}

// TrainStepsInC runs `steps` training steps on one batch in a C++ loop, with no Go between steps.
// It exists for benchmarks: the pure C++ loop that the Go loop is measured against.
func (n *Net) TrainStepsInC(opt *Optimizer, x, y Host, lr, clip float64, steps int) error {
	return n.trainSteps("train steps", opt, x, y, lr, clip, steps, 1, nil)
}

// trainSteps runs steps steps on one batch; weight is the batch's part of a group's (1 alone), and
// flags the values the group agrees on in the step (see TrainShare).
func (n *Net) trainSteps(op string, opt *Optimizer, x, y Host, lr, clip float64, steps int, weight float64, flags []int64) error {
	if err := n.live(op); err != nil {
		return err
	}
	if opt == nil || opt.p == nil {
		return errorf(op, "optimizer is nil or closed")
	}
	if err := x.validate(op, "input"); err != nil {
		return err
	}
	if err := y.validate(op, "target"); err != nil {
		return err
	}
	xs, xd := x.cShape()
	ys, yd := y.cShape()
	if weight != 1 || flags != nil {
		return check(op, C.Net_TrainShare(n.p, opt.p, (*C.float)(x.ptr), xs, xd, y.ptr, ys, yd, y.dtype,
			C.double(lr), C.double(clip), C.double(weight), cFlags(flags), C.int64_t(len(flags))))
	}
	if steps == 1 {
		return check(op, C.Net_TrainStep(n.p, opt.p, (*C.float)(x.ptr), xs, xd, y.ptr, ys, yd, y.dtype,
			C.double(lr), C.double(clip)))
	}
	return check(op, C.Net_TrainSteps(n.p, opt.p, (*C.float)(x.ptr), xs, xd, y.ptr, ys, yd, y.dtype,
		C.double(lr), C.double(clip), C.int64_t(steps)))
}

// TakeLoss waits for the device and returns the mean training loss over the steps since the last
// call, and how many steps that was (0 steps gives a mean of 0).
func (n *Net) TakeLoss() (mean float64, steps int64, err error) {
	if err := n.live("take loss"); err != nil {
		return 0, 0, err
	}
	var sum C.double
	var count C.int64_t
	if err := check("take loss", C.Net_TakeLoss(n.p, &sum, &count)); err != nil {
		return 0, 0, err
	}
	if count == 0 {
		return 0, 0, nil
	}
	return float64(sum) / float64(count), int64(count), nil
}
