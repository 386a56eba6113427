package torch_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/torch"
)

// testDevice is where the tests train: SPOTTRAIN_TEST_DEVICE (e.g. "cuda" on a GPU machine), or the CPU.
func testDevice(t *testing.T) torch.Device {
	t.Helper()
	name := os.Getenv("SPOTTRAIN_TEST_DEVICE")
	if name == "" {
		return torch.CPU
	}
	dev, err := torch.ParseDevice(name)
	require.NoError(t, err)
	return dev
}

func newLSTM(t *testing.T, cfg torch.LSTMConfig) *torch.Net {
	t.Helper()
	net, err := torch.NewLSTM(cfg, testDevice(t))
	require.NoError(t, err)
	t.Cleanup(func() { net.Close() })
	return net
}

func newAdam(t *testing.T, net *torch.Net, lr float64) *torch.Optimizer {
	t.Helper()
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "adam", LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	require.NoError(t, err)
	t.Cleanup(func() { opt.Close() })
	return opt
}

func TestVersion(t *testing.T) {
	assert.Regexp(t, `^[12]\.\d+\.\d+`, torch.Version())
}

func TestParseDevice(t *testing.T) {
	d, err := torch.ParseDevice("cpu")
	require.NoError(t, err)
	assert.Equal(t, torch.CPU, d)

	auto, err := torch.ParseDevice("auto")
	require.NoError(t, err)
	if torch.CUDADeviceCount() > 0 {
		assert.Equal(t, torch.Device("cuda"), auto)
	} else {
		assert.Equal(t, torch.CPU, auto)
	}

	for _, bad := range []string{"gpu", "cuda:x", "", "tpu:0", "cuda:99"} {
		_, err := torch.ParseDevice(bad)
		var te *torch.Error
		require.Error(t, err, bad)
		assert.True(t, errors.As(err, &te), "%q: %v is not a *torch.Error", bad, err)
		assert.NotContains(t, err.Error(), "\n")
	}
	if torch.CUDADeviceCount() == 0 {
		_, err := torch.ParseDevice("cuda")
		assert.ErrorContains(t, err, "CUDA is not available")
	}
}

func TestNewLSTMRejectsBadSizes(t *testing.T) {
	for _, cfg := range []torch.LSTMConfig{
		{Inputs: 0, Hidden: 8, Layers: 1, Horizon: 1},
		{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 1, Dropout: 1.5},
		{Inputs: 3, Hidden: -1, Layers: 1, Horizon: 1},
	} {
		_, err := torch.NewLSTM(cfg, torch.CPU)
		assert.Error(t, err, "%+v", cfg)
	}
	_, err := torch.NewLSTM(torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 1}, "vulkan:7")
	assert.Error(t, err)
}

func TestLSTMParamCount(t *testing.T) {
	// PyTorch 1.13: nn.LSTM(5, 16, num_layers=2) has 4*16*(5+16+2) + 4*16*(16+16+2) = 3648 parameters,
	// nn.Linear(16, 24) 408.
	net := newLSTM(t, torch.LSTMConfig{Inputs: 5, Hidden: 16, Layers: 2, Horizon: 24})
	assert.Equal(t, int64(4*16*(5+16+2)+4*16*(16+16+2)+16*24+24), net.NumParams())
}

func TestShapeErrorsAreErrors(t *testing.T) {
	net := newLSTM(t, torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 2})
	opt := newAdam(t, net, 1e-3)
	x := make([]float32, 4*5*3)
	y := make([]float32, 4*2)
	out := make([]float32, 4*2)

	cases := []struct {
		name string
		call func() error
	}{
		{"data shorter than shape", func() error {
			return net.TrainStep(opt, torch.Float32s(x[:10], 4, 5, 3), torch.Float32s(y, 4, 2), 1e-3, 0)
		}},
		{"wrong feature count", func() error { return net.TrainStep(opt, torch.Float32s(x, 4, 3, 5), torch.Float32s(y, 4, 2), 1e-3, 0) }},
		{"wrong rank", func() error { return net.TrainStep(opt, torch.Float32s(x, 20, 3), torch.Float32s(y, 4, 2), 1e-3, 0) }},
		{"target shape mismatch", func() error { return net.TrainStep(opt, torch.Float32s(x, 4, 5, 3), torch.Float32s(y, 2, 4), 1e-3, 0) }},
		{"no shape", func() error { return net.TrainStep(opt, torch.Float32s(x), torch.Float32s(y, 4, 2), 1e-3, 0) }},
		{"zero dimension", func() error { return net.Forward(torch.Float32s(nil, 0, 5, 3), out) }},
		{"output buffer too small", func() error { return net.Forward(torch.Float32s(x, 4, 5, 3), out[:3]) }},
		{"forward wrong features", func() error { return net.Forward(torch.Float32s(x, 4, 15, 1), out) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			var te *torch.Error
			require.Error(t, err)
			assert.True(t, errors.As(err, &te), "%v", err)
			assert.NotContains(t, err.Error(), "\n")
		})
	}
	// The net still works after all those errors.
	require.NoError(t, net.TrainStep(opt, torch.Float32s(x, 4, 5, 3), torch.Float32s(y, 4, 2), 1e-3, 0))
	require.NoError(t, net.Forward(torch.Float32s(x, 4, 5, 3), out))
}

func TestOptimizerErrors(t *testing.T) {
	net := newLSTM(t, torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 2})
	_, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "rmsprop", LR: 1e-3})
	assert.ErrorContains(t, err, "unknown optimizer")
	_, err = torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 1e-3, Nesterov: true})
	assert.ErrorContains(t, err, "nesterov")

	other := newLSTM(t, torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 2})
	opt := newAdam(t, other, 1e-3)
	x, y := make([]float32, 2*4*3), make([]float32, 2*2)
	err = net.TrainStep(opt, torch.Float32s(x, 2, 4, 3), torch.Float32s(y, 2, 2), 1e-3, 0)
	assert.ErrorContains(t, err, "another net")
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	net, err := torch.NewLSTM(torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 2}, testDevice(t))
	require.NoError(t, err)
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.1})
	require.NoError(t, err)
	require.NoError(t, opt.Close())
	require.NoError(t, opt.Close())
	require.NoError(t, net.Close())
	require.NoError(t, net.Close())
	assert.ErrorContains(t, net.Forward(torch.Float32s(make([]float32, 6), 1, 2, 3), make([]float32, 2)), "closed")
	_, err = torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.1})
	assert.ErrorContains(t, err, "closed")
}

// A sine-continuation task: each optimizer must drive the loss well below its starting value.
func TestTrainingReducesLoss(t *testing.T) {
	for _, name := range []string{"adam", "adamw", "sgd"} {
		t.Run(name, func(t *testing.T) {
			torch.ManualSeed(7)
			const b, l, h = 32, 12, 3
			net := newLSTM(t, torch.LSTMConfig{Inputs: 1, Hidden: 16, Layers: 1, Horizon: h})
			cfg := torch.OptimizerConfig{Name: name, LR: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-4}
			if name == "sgd" {
				cfg.LR, cfg.Momentum, cfg.Nesterov = 0.1, 0.9, true
			}
			opt, err := torch.NewOptimizer(net, cfg)
			require.NoError(t, err)
			defer opt.Close()

			rng := rand.New(rand.NewPCG(1, 2))
			x, y := make([]float32, b*l), make([]float32, b*h)
			batch := func() {
				for i := 0; i < b; i++ {
					phase := rng.Float64() * 6.28
					for j := 0; j < l+h; j++ {
						v := float32(math.Sin(phase + 0.5*float64(j)))
						if j < l {
							x[i*l+j] = v
						} else {
							y[i*h+j-l] = v
						}
					}
				}
			}
			var first, last float64
			for step := 0; step < 150; step++ {
				batch()
				require.NoError(t, net.TrainStep(opt, torch.Float32s(x, b, l, 1), torch.Float32s(y, b, h), cfg.LR, 1.0))
				if step == 9 {
					first, _, err = net.TakeLoss()
					require.NoError(t, err)
				}
			}
			last, n, err := net.TakeLoss()
			require.NoError(t, err)
			assert.Equal(t, int64(140), n)
			assert.Less(t, last, first/3, "loss %.4f -> %.4f", first, last)
		})
	}
}

func TestSameSeedSameWeights(t *testing.T) {
	run := func() []float32 {
		torch.ManualSeed(42)
		net := newLSTM(t, torch.LSTMConfig{Inputs: 2, Hidden: 8, Layers: 2, Dropout: 0.2, Horizon: 2})
		opt := newAdam(t, net, 1e-2)
		x := make([]float32, 4*6*2)
		for i := range x {
			x[i] = float32(i%7) / 7
		}
		y := make([]float32, 4*2)
		for i := 0; i < 5; i++ {
			require.NoError(t, net.TrainStep(opt, torch.Float32s(x, 4, 6, 2), torch.Float32s(y, 4, 2), 1e-2, 0))
		}
		out := make([]float32, 4*2)
		require.NoError(t, net.Forward(torch.Float32s(x, 4, 6, 2), out))
		return out
	}
	assert.Equal(t, run(), run())
}

// The forecast losses compare a·output + b with c, averaged over every element (PyTorch:
// mse_loss, l1_loss and huber_loss of a*out+b against c, reduction "mean"); a step head gives one
// output per trailing step.
func TestLSTMForecastLosses(t *testing.T) {
	const b, steps, h, in = 3, 6, 4, 2
	r := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, b*steps*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]float32, b*3*h) // [b][a, b, c][h]
	for i := range b {
		for j := range h {
			y[i*3*h+j], y[i*3*h+h+j], y[i*3*h+2*h+j] = float32(r.Float64()), float32(0.2*r.Float64()), float32(r.Float64())
		}
	}
	y[0], y[h], y[2*h] = 0, 0, 0 // a masked element adds nothing but still counts in the mean
	loss := map[string]func(d float64) float64{
		"mse": func(d float64) float64 { return d * d },
		"mae": math.Abs,
		"huber": func(d float64) float64 { // delta 0.1
			if math.Abs(d) < 0.1 {
				return 0.5 * d * d
			}
			return 0.1 * (math.Abs(d) - 0.05)
		},
	}
	for name, ell := range loss {
		for _, stepHead := range []bool{false, true} {
			torch.ManualSeed(1)
			net := newLSTM(t, torch.LSTMConfig{Inputs: in, Hidden: 5, Layers: 1, Horizon: h, StepHead: stepHead, Loss: name, HuberDelta: 0.1})
			out := make([]float32, b*h)
			require.NoError(t, net.Forward(torch.Float32s(x, b, steps, in), out))
			var want float64
			for i := range b {
				for j := range h {
					a, off, c := y[i*3*h+j], y[i*3*h+h+j], y[i*3*h+2*h+j]
					want += ell(float64(a*out[i*h+j] + off - c))
				}
			}
			want /= b * h
			opt := newAdam(t, net, 1e-3)
			require.NoError(t, net.TrainStep(opt, torch.Float32s(x, b, steps, in), torch.Float32s(y, b, 3, h), 1e-3, 0))
			got, _, err := net.TakeLoss()
			require.NoError(t, err)
			assert.InDelta(t, want, got, 1e-6, "%s, step head %v", name, stepHead)
		}
	}
	net := newLSTM(t, torch.LSTMConfig{Inputs: in, Hidden: 5, Layers: 1, Horizon: h, Loss: "mse"})
	err := net.TrainStep(newAdam(t, net, 1e-3), torch.Float32s(x, b, steps, in), torch.Float32s(y[:b*h], b, h), 1e-3, 0)
	assert.ErrorContains(t, err, "forecast targets must be [3, 3, 4]")
	_, err = torch.NewLSTM(torch.LSTMConfig{Inputs: in, Hidden: 5, Layers: 1, Horizon: h, Loss: "l2"}, torch.CPU)
	assert.ErrorContains(t, err, `unknown loss "l2"`)
	short := newLSTM(t, torch.LSTMConfig{Inputs: in, Hidden: 5, Layers: 1, Horizon: 8, StepHead: true})
	assert.ErrorContains(t, short.Forward(torch.Float32s(x, b, steps, in), make([]float32, b*8)), "fewer than the horizon 8")
}
