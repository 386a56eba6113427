package torch_test

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/torch"
)

func weightsDigest(t *testing.T, net *torch.Net) [32]byte {
	t.Helper()
	ts, err := net.StateTensors()
	require.NoError(t, err)
	h := sha256.New()
	for _, x := range ts {
		h.Write([]byte(x.Name))
		h.Write(x.Data)
	}
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d
}

// Saving model, optimizer and RNG mid-run and restoring them into fresh objects continues the run
// bit for bit: dropout masks (RNG), Adam moments and weights all carry over.
//
// On CUDA the LSTM has one layer: cuDNN's dropout between LSTM layers keeps a state of its own,
// outside libtorch's generators, so a resumed multi-layer LSTM draws other masks there (the head's
// dropout does use the restored CUDA generator). Deterministic mode keeps cuDNN's kernels
// reproducible.
func TestStateRoundTripResumesExactly(t *testing.T) {
	cfg := torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 2, Dropout: 0.3, Horizon: 2}
	if testDevice(t).IsCUDA() {
		cfg.Layers = 1
		require.NoError(t, torch.SetDeterministic(true))
		t.Cleanup(func() { torch.SetDeterministic(false) })
	}
	x := make([]float32, 4*5*3)
	for i := range x {
		x[i] = float32(i%11) / 11
	}
	y := []float32{1, 0, 0.5, 0.2, 0.1, 0.9, 0.3, 0.3}
	step := func(net *torch.Net, opt *torch.Optimizer, k int) {
		for i := 0; i < k; i++ {
			require.NoError(t, net.TrainStep(opt, torch.Float32s(x, 4, 5, 3), torch.Float32s(y, 4, 2), 1e-2, 1.0))
		}
	}

	torch.ManualSeed(1)
	a := newLSTM(t, cfg)
	optA := newAdam(t, a, 1e-2)
	step(a, optA, 3)
	snap, err := torch.TakeSnapshot(a, optA)
	require.NoError(t, err)
	defer snap.Close()
	step(a, optA, 4) // training goes on; the snapshot does not move with it
	model, err := snap.Model()
	require.NoError(t, err)
	optim, err := snap.Optimizer()
	require.NoError(t, err)
	rng, err := snap.RNG()
	require.NoError(t, err)
	want := weightsDigest(t, a)

	torch.ManualSeed(99) // a different init and generator state, all overwritten by the load
	b := newLSTM(t, cfg)
	optB := newAdam(t, b, 1e-2)
	require.NotEqual(t, want, weightsDigest(t, b))
	require.NoError(t, b.LoadState(model))
	require.NoError(t, optB.LoadState(optim))
	require.NoError(t, torch.LoadRNG(rng))
	step(b, optB, 4)
	assert.Equal(t, want, weightsDigest(t, b), "resumed run ends with the same weights")
}

func modelState(t *testing.T, net *torch.Net, opt *torch.Optimizer) []byte {
	t.Helper()
	snap, err := torch.TakeSnapshot(net, opt)
	require.NoError(t, err)
	defer snap.Close()
	b, err := snap.Model()
	require.NoError(t, err)
	return b
}

func TestLoadStateRejectsBadState(t *testing.T) {
	net := newLSTM(t, torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 2})
	opt := newAdam(t, net, 1e-3)
	other := newLSTM(t, torch.LSTMConfig{Inputs: 3, Hidden: 16, Layers: 1, Horizon: 2})
	otherState := modelState(t, other, newAdam(t, other, 1e-3))
	good := modelState(t, net, opt)
	before := weightsDigest(t, net)

	truncated := good[:len(good)/2]
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/3] ^= 0xff
	for name, state := range map[string][]byte{
		"empty": nil, "garbage": []byte("not a torch archive"), "truncated": truncated,
		"another architecture": otherState,
	} {
		err := net.LoadState(state)
		assert.Error(t, err, name)
		assert.NotContains(t, err.Error(), "\n", name)
	}
	assert.Error(t, opt.LoadState([]byte("junk")))
	assert.Error(t, torch.LoadRNG([]byte("junk")))
	// A flipped byte may or may not be caught by the zip reader (checksums live in the manifest
	// layer above); it must never crash the process.
	_ = net.LoadState(flipped)
	require.NoError(t, net.LoadState(good))
	assert.Equal(t, before, weightsDigest(t, net))
}

func TestStateTensorsNamesLikePyTorch(t *testing.T) {
	net := newLSTM(t, torch.LSTMConfig{Inputs: 3, Hidden: 4, Layers: 1, Horizon: 2})
	ts, err := net.StateTensors()
	require.NoError(t, err)
	var names []string
	for _, x := range ts {
		names = append(names, x.Name)
		assert.Equal(t, torch.F32, x.DType)
	}
	// nn.LSTM(3, 4) + nn.Linear(4, 2) as attributes lstm and head: PyTorch's state_dict keys.
	assert.Equal(t, []string{"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0", "head.weight", "head.bias"}, names)
	assert.Equal(t, []int64{16, 3}, ts[0].Shape)
	assert.Len(t, ts[0].Data, 48*4)
}
