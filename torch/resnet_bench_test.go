package torch_test

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"

	"spottrain/torch"
)

// gflopPerImage is the work of one ResNet-50 (CIFAR stem, 32x32) training step per image:
// forward ~2.6 GFLOP (multiply-adds counted as 2 FLOP), backward twice that.
const gflopPerImage = 7.8

// BenchmarkResNet50Step measures one SGD (Nesterov momentum, weight decay) training step of
// ResNet-50 with the CIFAR stem and 100 classes, label smoothing 0.1, from a batch in Go memory
// (copied to the device every step, as in training). scripts/bench/resnet_step.py does the same in
// PyTorch eager. Env: SPOTTRAIN_BENCH_DEVICE (cpu), SPOTTRAIN_BENCH_BATCH (8 on the CPU, 256 on
// CUDA), SPOTTRAIN_BENCH_BF16 (1: bf16 autocast), SPOTTRAIN_BENCH_CHANNELS_LAST (1: NHWC),
// SPOTTRAIN_BENCH_THREADS (2).
func BenchmarkResNet50Step(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev := torch.Device("cpu")
	if v := os.Getenv("SPOTTRAIN_BENCH_DEVICE"); v != "" {
		dev = torch.Device(v)
	}
	batch := 8
	if dev.IsCUDA() {
		batch = 256
	}
	if v, err := strconv.Atoi(os.Getenv("SPOTTRAIN_BENCH_BATCH")); err == nil {
		batch = v
	}
	threads := 2
	if v, err := strconv.Atoi(os.Getenv("SPOTTRAIN_BENCH_THREADS")); err == nil {
		threads = v
	}
	torch.SetNumThreads(threads)
	torch.ManualSeed(0)
	torch.SetCudnnBenchmark(true)
	net, err := torch.NewResNet(torch.ResNetConfig{Depth: 50, Classes: 100, CIFARStem: true, Width: 1}, dev)
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	err = net.SetOptions(torch.NetOptions{LabelSmoothing: 0.1, BF16: os.Getenv("SPOTTRAIN_BENCH_BF16") == "1",
		ChannelsLast: os.Getenv("SPOTTRAIN_BENCH_CHANNELS_LAST") == "1"})
	if err != nil {
		b.Fatal(err)
	}
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4})
	if err != nil {
		b.Fatal(err)
	}
	defer opt.Close()
	rng := rand.New(rand.NewPCG(1, 1))
	x, y := make([]float32, batch*3*32*32), make([]int64, batch)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range y {
		y[i] = int64(rng.IntN(100))
	}
	xt, yt := torch.Float32s(x, int64(batch), 3, 32, 32), torch.Int64s(y, int64(batch))
	for i := 0; i < 5; i++ { // warm up: cuDNN autotuning, allocator
		if err := net.TrainStep(opt, xt, yt, 0.1, 0); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := net.TakeLoss(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := net.TrainStep(opt, xt, yt, 0.1, 0); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := net.TakeLoss(); err != nil {
		b.Fatal(err)
	}
	images := float64(b.N*batch) / b.Elapsed().Seconds()
	b.ReportMetric(images, "images/s")
	b.ReportMetric(images*gflopPerImage/1000, "TFLOP/s")
}
