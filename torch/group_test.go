package torch_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/torch"
)

// joinGroup starts a store and joins world ranks to a Gloo group through it, each in a goroutine
// (real c10d: TCPStore, ProcessGroupGloo, sockets on 127.0.0.1).
func joinGroup(t *testing.T, world int, timeout time.Duration) []*torch.Group {
	t.Helper()
	store, err := torch.NewStoreServer(timeout)
	require.NoError(t, err)
	t.Cleanup(store.Close)
	groups := make([]*torch.Group, world)
	onEach(t, world, func(r int) error {
		g, err := torch.NewGroup(torch.GroupConfig{Host: "127.0.0.1", Port: store.Port(), Prefix: "/test",
			Rank: r, World: world, Backend: "gloo", Device: torch.CPU, Timeout: timeout})
		groups[r] = g
		return err
	})
	for _, g := range groups {
		t.Cleanup(g.Close)
	}
	return groups
}

// onEach runs f for every rank at once (a collective needs them all) and fails on any error.
func onEach(t *testing.T, world int, f func(rank int) error) {
	t.Helper()
	errs := make([]error, world)
	var wg sync.WaitGroup
	for r := range world {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = f(r)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		require.NoError(t, err, "rank %d", r)
	}
}

func TestGroupCollectives(t *testing.T) {
	const world = 3
	gs := joinGroup(t, world, 10*time.Second)
	maxes := make([][]int64, world)
	sums := make([][]float64, world)
	got := make([][]byte, world)
	var gathered [][]byte
	onEach(t, world, func(r int) error {
		g := gs[r]
		maxes[r] = []int64{int64(r), int64(-r), 7}
		if err := g.MaxInt64(maxes[r]); err != nil {
			return err
		}
		sums[r] = []float64{float64(r), 0.5}
		if err := g.SumFloat64(sums[r]); err != nil {
			return err
		}
		var mine []byte
		if r == 1 {
			mine = []byte("from rank one")
		}
		var err error
		if got[r], err = g.Broadcast(1, mine); err != nil {
			return err
		}
		parts, err := g.Gather(0, []byte(fmt.Sprintf("rank %d says %s", r, string(make([]byte, r)))))
		if r == 0 {
			gathered = parts
		} else if parts != nil {
			return fmt.Errorf("rank %d got a gather's result", r)
		}
		if err != nil {
			return err
		}
		return g.Barrier()
	})
	for r := range world {
		assert.Equal(t, []int64{2, 0, 7}, maxes[r], "rank %d", r)
		assert.Equal(t, []float64{3, 1.5}, sums[r], "rank %d", r)
		assert.Equal(t, "from rank one", string(got[r]), "rank %d", r)
	}
	require.Len(t, gathered, world)
	for r, p := range gathered {
		assert.Equal(t, fmt.Sprintf("rank %d says %s", r, string(make([]byte, r))), string(p))
	}
}

func TestGroupBroadcastLargeAndEmpty(t *testing.T) {
	gs := joinGroup(t, 2, 10*time.Second)
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	got := make([][]byte, 2)
	empty := make([][]byte, 2)
	onEach(t, 2, func(r int) error {
		var err error
		var in []byte
		if r == 0 {
			in = big
		}
		if got[r], err = gs[r].Broadcast(0, in); err != nil {
			return err
		}
		empty[r], err = gs[r].Broadcast(0, nil)
		return err
	})
	assert.Equal(t, big, got[1])
	assert.Empty(t, empty[1])
}

// A 2-rank step on halves of a batch, each weighted 1/2, is the 1-rank step on the whole batch to
// float tolerance, and leaves both ranks' weights bitwise equal; a rank with no samples (weight 0)
// takes the other's step.
func TestTrainShareAveragesGradients(t *testing.T) {
	cfg := torch.LSTMConfig{Inputs: 3, Hidden: 8, Layers: 1, Horizon: 2}
	rng := rand.New(rand.NewPCG(1, 2))
	const b, lookback = 8, 5
	x := make([]float32, b*lookback*cfg.Inputs)
	y := make([]float32, b*cfg.Horizon)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range y {
		y[i] = float32(rng.NormFloat64())
	}
	half := func(r int) (torch.Host, torch.Host) {
		xs, ys := len(x)/2, len(y)/2
		return torch.Float32s(x[r*xs:(r+1)*xs], b/2, lookback, int64(cfg.Inputs)), torch.Float32s(y[r*ys:(r+1)*ys], b/2, int64(cfg.Horizon))
	}

	torch.ManualSeed(3)
	alone := newLSTM(t, cfg)
	aloneOpt := newAdam(t, alone, 0.01)
	for range 3 {
		require.NoError(t, alone.TrainStep(aloneOpt, torch.Float32s(x, b, lookback, int64(cfg.Inputs)), torch.Float32s(y, b, int64(cfg.Horizon)), 0.01, 1))
	}
	aloneLoss, _, err := alone.TakeLoss()
	require.NoError(t, err)

	gs := joinGroup(t, 2, 10*time.Second)
	nets := make([]*torch.Net, 2)
	opts := make([]*torch.Optimizer, 2)
	for r := range 2 {
		torch.ManualSeed(uint64(10 + r)) // different initial weights: the broadcast makes them rank 0's
		nets[r] = newLSTM(t, cfg)
		opts[r] = newAdam(t, nets[r], 0.01)
	}
	torch.ManualSeed(3)
	first := newLSTM(t, cfg) // rank 0's weights: those alone started from
	copyWeights(t, first, nets[0])
	losses := make([]float64, 2)
	onEach(t, 2, func(r int) error {
		if err := gs[r].BroadcastNet(nets[r], 0); err != nil {
			return err
		}
		if err := nets[r].SetGroup(gs[r], 1<<20); err != nil {
			return err
		}
		for range 3 {
			xr, yr := half(r)
			if err := nets[r].TrainShare(opts[r], xr, yr, 0.01, 1, 0.5, nil); err != nil {
				return err
			}
		}
		var err error
		losses[r], _, err = nets[r].TakeLoss()
		return err
	})
	assert.Equal(t, weightsDigest(t, nets[0]), weightsDigest(t, nets[1]), "the ranks' weights differ")
	assert.Equal(t, losses[0], losses[1])
	assert.InDelta(t, aloneLoss, losses[0], 1e-5)
	assertClose(t, alone, nets[0], 1e-5)
	calls, took := nets[0].ReduceStats()
	assert.Equal(t, int64(3), calls)
	assert.Greater(t, took, time.Duration(0))

	// An empty share: rank 1 has no samples, rank 0 all of them with weight 1; the flags each rank
	// brings to the step come out as the group's maximum.
	flags := [][]int64{{0, 5}, {1, -5}}
	onEach(t, 2, func(r int) error {
		if r == 1 {
			return nets[1].TrainShare(opts[1], torch.Host{}, torch.Host{}, 0.01, 1, 0, flags[1])
		}
		return nets[0].TrainShare(opts[0], torch.Float32s(x, b, lookback, int64(cfg.Inputs)), torch.Float32s(y, b, int64(cfg.Horizon)), 0.01, 1, 1, flags[0])
	})
	assert.Equal(t, weightsDigest(t, nets[0]), weightsDigest(t, nets[1]), "an empty share took another step")
	assert.Equal(t, [][]int64{{1, 5}, {1, 5}}, flags)
}

// copyWeights loads from's parameters and buffers into to.
func copyWeights(t *testing.T, from, to *torch.Net) {
	t.Helper()
	snap, err := torch.TakeSnapshot(from, newAdam(t, from, 0.01))
	require.NoError(t, err)
	defer snap.Close()
	state, err := snap.Model()
	require.NoError(t, err)
	require.NoError(t, to.LoadState(state))
}

// assertClose checks that a's and b's float32 parameters agree within tol.
func assertClose(t *testing.T, a, b *torch.Net, tol float64) {
	t.Helper()
	ta, err := a.StateTensors()
	require.NoError(t, err)
	tb, err := b.StateTensors()
	require.NoError(t, err)
	require.Equal(t, len(ta), len(tb))
	for i := range ta {
		require.Equal(t, ta[i].Name, tb[i].Name)
		for j := 0; j+4 <= len(ta[i].Data); j += 4 {
			va := math.Float32frombits(binary.LittleEndian.Uint32(ta[i].Data[j:]))
			vb := math.Float32frombits(binary.LittleEndian.Uint32(tb[i].Data[j:]))
			require.InDelta(t, va, vb, tol, "%s[%d]", ta[i].Name, j/4)
		}
	}
}

// A rank that leaves (its group closed: its sockets shut, as a killed process's are) fails the
// others' next collective at once, and its heartbeat stops: Missing names it.
func TestGroupPeerGone(t *testing.T) {
	gs := joinGroup(t, 2, 20*time.Second)
	gs[1].Close()
	start := time.Now()
	err := gs[0].SumFloat64([]float64{1})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 10*time.Second, "the lost peer was noticed only at the timeout")
	missing, err := gs[0].Missing(1200 * time.Millisecond)
	require.NoError(t, err)
	assert.Equal(t, []int{1}, missing)
}

// BenchmarkGroupAllreduce times a bare Gloo allreduce of the LSTM's gradients (54k floats) between
// two ranks of this process.
func BenchmarkGroupAllreduce(b *testing.B) {
	for _, n := range []int{54_000, 1 << 20} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			t := &testing.T{}
			gs := joinGroup(t, 2, 10*time.Second)
			bufs := [][]float32{make([]float32, n), make([]float32, n)}
			b.SetBytes(int64(4 * n))
			b.ResetTimer()
			var wg sync.WaitGroup
			for r := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range b.N {
						if err := gs[r].SumFloat32(bufs[r]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
