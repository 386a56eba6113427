package torch_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/torch"
)

func newResNet(t *testing.T, cfg torch.ResNetConfig) *torch.Net {
	t.Helper()
	net, err := torch.NewResNet(cfg, testDevice(t))
	require.NoError(t, err)
	t.Cleanup(func() { net.Close() })
	return net
}

// Parameter counts of torchvision's resnet50 / resnet18 with the CIFAR stem (conv1 3x3, no
// max-pool) and 100 classes, counted with PyTorch 1.13.
func TestResNetParamCounts(t *testing.T) {
	for _, c := range []struct {
		depth int
		want  int64
	}{{50, 23_705_252}, {18, 11_220_132}} {
		net, err := torch.NewResNet(torch.ResNetConfig{Depth: c.depth, Classes: 100, CIFARStem: true, Width: 1}, torch.CPU)
		require.NoError(t, err)
		assert.Equal(t, c.want, net.NumParams(), "ResNet-%d", c.depth)
		net.Close()
	}
}

func TestResNetRejectsBadConfig(t *testing.T) {
	for _, cfg := range []torch.ResNetConfig{
		{Depth: 20, Classes: 10, Width: 1},
		{Depth: 18, Classes: 0, Width: 1},
		{Depth: 18, Classes: 10, Width: 0},
	} {
		_, err := torch.NewResNet(cfg, torch.CPU)
		assert.Error(t, err, "%+v", cfg)
	}
	net := newResNet(t, torch.ResNetConfig{Depth: 18, Classes: 10, CIFARStem: true, Width: 0.125})
	if !testDevice(t).IsCUDA() {
		assert.ErrorContains(t, net.SetOptions(torch.NetOptions{BF16: true}), "CUDA")
	}
	assert.Error(t, net.SetOptions(torch.NetOptions{LabelSmoothing: 1}))
	out := make([]float32, 2*10)
	assert.ErrorContains(t, net.Forward(torch.Float32s(make([]float32, 2*32*32), 2, 1, 32, 32), out), "[batch, 3")
	opt := newSGD(t, net)
	x := make([]float32, 2*3*32*32)
	err := net.TrainStep(opt, torch.Float32s(x, 2, 3, 32, 32), torch.Float32s(make([]float32, 2), 2), 0.1, 0)
	assert.ErrorContains(t, err, "int64 class indices")
	err = net.TrainStep(opt, torch.Float32s(x, 2, 3, 32, 32), torch.Int64s([]int64{1, 2, 3}, 3), 0.1, 0)
	assert.Error(t, err)
}

func newSGD(t *testing.T, net *torch.Net) *torch.Optimizer {
	t.Helper()
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4})
	require.NoError(t, err)
	t.Cleanup(func() { opt.Close() })
	return opt
}

// classBatch makes a learnable image batch: the class sets which channel is bright.
func classBatch(rng *rand.Rand, b, classes int) ([]float32, []int64) {
	x, y := make([]float32, b*3*32*32), make([]int64, b)
	for i := range y {
		y[i] = int64(rng.IntN(classes))
		for j := 0; j < 3*32*32; j++ {
			v := float32(rng.NormFloat64()) * 0.5
			if j/(32*32) == int(y[i])%3 && (j%32 < 16) == (int(y[i]) < 3) {
				v += 1.5
			}
			x[i*3*32*32+j] = v
		}
	}
	return x, y
}

func TestResNetLossFalls(t *testing.T) {
	torch.ManualSeed(5)
	net := newResNet(t, torch.ResNetConfig{Depth: 18, Classes: 6, CIFARStem: true, ZeroInit: true, Width: 0.125})
	require.NoError(t, net.SetOptions(torch.NetOptions{LabelSmoothing: 0.1, ChannelsLast: true}))
	opt := newSGD(t, net)
	rng := rand.New(rand.NewPCG(1, 2))
	var first float64
	for step := 0; step < 60; step++ {
		x, y := classBatch(rng, 16, 6)
		require.NoError(t, net.TrainStep(opt, torch.Float32s(x, 16, 3, 32, 32), torch.Int64s(y, 16), 0.05, 5))
		switch step {
		case 4: // the mean loss of the first 5 steps
			l, _, err := net.TakeLoss()
			require.NoError(t, err)
			first = l
		case 49: // the last 10 steps are measured below
			_, _, err := net.TakeLoss()
			require.NoError(t, err)
		}
	}
	last, _, err := net.TakeLoss()
	require.NoError(t, err)
	assert.Less(t, last, first*0.6, "loss %.3f -> %.3f (label smoothing 0.1 keeps it above ~0.5)", first, last)

	// Eval mode uses the BatchNorm running statistics: the trained net classifies fresh images.
	x, y := classBatch(rng, 64, 6)
	logits := make([]float32, 64*6)
	require.NoError(t, net.Forward(torch.Float32s(x, 64, 3, 32, 32), logits))
	correct := 0
	for i := range y {
		best := 0
		for c := 1; c < 6; c++ {
			if logits[i*6+c] > logits[i*6+best] {
				best = c
			}
		}
		if int64(best) == y[i] {
			correct++
		}
	}
	assert.Greater(t, correct, 64/6*2, "accuracy %d/64, chance is about 11", correct)
}

// BatchNorm running statistics and num_batches_tracked are part of the state, with torchvision's
// names, and resume exactly.
func TestResNetStateResumesExactly(t *testing.T) {
	cfg := torch.ResNetConfig{Depth: 18, Classes: 4, CIFARStem: true, Width: 0.125}
	if testDevice(t).IsCUDA() {
		require.NoError(t, torch.SetDeterministic(true))
		t.Cleanup(func() { torch.SetDeterministic(false) })
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var xs [][]float32
	var ys [][]int64
	for i := 0; i < 6; i++ {
		x, y := classBatch(rng, 4, 4)
		xs, ys = append(xs, x), append(ys, y)
	}
	steps := func(net *torch.Net, opt *torch.Optimizer, from, to int) {
		for i := from; i < to; i++ {
			require.NoError(t, net.TrainStep(opt, torch.Float32s(xs[i], 4, 3, 32, 32), torch.Int64s(ys[i], 4), 0.05, 0))
		}
	}
	torch.ManualSeed(1)
	a := newResNet(t, cfg)
	optA := newSGD(t, a)
	steps(a, optA, 0, 3)
	snap, err := torch.TakeSnapshot(a, optA)
	require.NoError(t, err)
	defer snap.Close()
	steps(a, optA, 3, 6)

	ts, err := a.StateTensors()
	require.NoError(t, err)
	byName := map[string]torch.Tensor{}
	for _, x := range ts {
		byName[x.Name] = x
	}
	for _, name := range []string{"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "fc.weight"} {
		assert.Contains(t, byName, name)
	}
	require.Contains(t, byName, "bn1.num_batches_tracked")
	assert.Equal(t, torch.I64, byName["bn1.num_batches_tracked"].DType)

	torch.ManualSeed(2)
	b := newResNet(t, cfg)
	optB := newSGD(t, b)
	model, err := snap.Model()
	require.NoError(t, err)
	optim, err := snap.Optimizer()
	require.NoError(t, err)
	require.NoError(t, b.LoadState(model))
	require.NoError(t, optB.LoadState(optim))
	steps(b, optB, 3, 6)
	assert.Equal(t, weightsDigest(t, a), weightsDigest(t, b))
}

// A few ResNet-50 steps at batch 2: shapes through the bottleneck stages, finite loss.
func TestResNet50Steps(t *testing.T) {
	torch.ManualSeed(3)
	net := newResNet(t, torch.ResNetConfig{Depth: 50, Classes: 100, CIFARStem: true, Width: 1})
	opt := newSGD(t, net)
	rng := rand.New(rand.NewPCG(5, 6))
	x, y := classBatch(rng, 2, 100)
	for i := 0; i < 3; i++ {
		require.NoError(t, net.TrainStep(opt, torch.Float32s(x, 2, 3, 32, 32), torch.Int64s(y, 2), 0.01, 5))
	}
	loss, n, err := net.TakeLoss()
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
	assert.Greater(t, loss, 0.0)
	assert.Less(t, loss, 20.0)
	logits := make([]float32, 2*100)
	require.NoError(t, net.Forward(torch.Float32s(x, 2, 3, 32, 32), logits))
	assert.Error(t, net.Forward(torch.Float32s(x, 2, 3, 32, 32), logits[:100]), "the output is [2, 100]")
}

// The multi-tensor SGD step does libtorch's SGD arithmetic (weight decay, momentum, Nesterov): on
// the CPU, where both run the same elementwise kernels, they give bitwise equal weights, and a
// save/load round trip of the state in the middle changes nothing.
func TestSGDForeachMatchesPerParameter(t *testing.T) {
	run := func(mode torch.Foreach) [32]byte {
		torch.ManualSeed(5)
		net, err := torch.NewResNet(torch.ResNetConfig{Depth: 18, Classes: 6, CIFARStem: true, Width: 0.125}, torch.CPU)
		require.NoError(t, err)
		defer net.Close()
		opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 5e-4, Foreach: mode})
		require.NoError(t, err)
		defer opt.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		for step := 0; step < 5; step++ {
			x, y := classBatch(rng, 8, 6)
			require.NoError(t, net.TrainStep(opt, torch.Float32s(x, 8, 3, 32, 32), torch.Int64s(y, 8), 0.05, 5))
			if step == 2 { // the state the step keeps serializes and loads back
				snap, err := torch.TakeSnapshot(net, opt)
				require.NoError(t, err)
				state, err := snap.Optimizer()
				require.NoError(t, err)
				snap.Close()
				require.NoError(t, opt.LoadState(state))
			}
		}
		return weightsDigest(t, net)
	}
	assert.Equal(t, run(torch.ForeachOff), run(torch.ForeachOn))
}
