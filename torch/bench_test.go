package torch_test

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"

	"spottrain/torch"
)

// The LSTM benchmark's sizes: the demo's model and batch. scripts/bench/lstm_step.py uses the same.
const (
	benchBatch    = 64
	benchLookback = 48
	benchFeatures = 8
	benchHidden   = 64
	benchLayers   = 2
	benchHorizon  = 24
)

// BenchmarkLSTMStep measures one Adam training step of the LSTM forecaster with gradient clipping,
// driven from a Go loop (one cgo call per step) and from a C++ loop (no Go between steps).
// SPOTTRAIN_BENCH_THREADS sets libtorch's thread count (default 2); SPOTTRAIN_BENCH_DEVICE the
// device (default cpu).
func BenchmarkLSTMStep(b *testing.B) {
	threads := 2
	if v, err := strconv.Atoi(os.Getenv("SPOTTRAIN_BENCH_THREADS")); err == nil {
		threads = v
	}
	dev := torch.Device("cpu")
	if v := os.Getenv("SPOTTRAIN_BENCH_DEVICE"); v != "" {
		dev = torch.Device(v)
	}
	torch.SetNumThreads(threads)
	rng := rand.New(rand.NewPCG(1, 1))
	x := make([]float32, benchBatch*benchLookback*benchFeatures)
	y := make([]float32, benchBatch*benchHorizon)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range y {
		y[i] = float32(rng.NormFloat64())
	}
	xt := torch.Float32s(x, benchBatch, benchLookback, benchFeatures)
	yt := torch.Float32s(y, benchBatch, benchHorizon)

	for _, loop := range []string{"go", "cpp"} {
		b.Run(loop, func(b *testing.B) {
			runtime.LockOSThread() // as the training loop does: one OpenMP thread team, see Loop.Run
			defer runtime.UnlockOSThread()
			torch.ManualSeed(0)
			net, err := torch.NewLSTM(torch.LSTMConfig{Inputs: benchFeatures, Hidden: benchHidden, Layers: benchLayers, Dropout: 0.1, Horizon: benchHorizon}, dev)
			if err != nil {
				b.Fatal(err)
			}
			defer net.Close()
			opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "adam", LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
			if err != nil {
				b.Fatal(err)
			}
			defer opt.Close()
			// Warm up allocator and kernels outside the timed region.
			if err := net.TrainStepsInC(opt, xt, yt, 1e-3, 1.0, 5); err != nil {
				b.Fatal(err)
			}
			if _, _, err := net.TakeLoss(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			if loop == "go" {
				for i := 0; i < b.N; i++ {
					if err := net.TrainStep(opt, xt, yt, 1e-3, 1.0); err != nil {
						b.Fatal(err)
					}
				}
			} else if err := net.TrainStepsInC(opt, xt, yt, 1e-3, 1.0, b.N); err != nil {
				b.Fatal(err)
			}
			if _, _, err := net.TakeLoss(); err != nil { // wait for the device
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "steps/s")
		})
	}
}
