package cifar_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/data/cifar"
)

// identity returns 0..n-1.
func identity(n int) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	return order
}

// shuffled returns a fixed permutation of 0..n-1.
func shuffled(n int) []int {
	order := identity(n)
	for i := n - 1; i > 0; i-- {
		j := (i * 7919) % (i + 1)
		order[i], order[j] = order[j], order[i]
	}
	return order
}

// collect returns copies of every batch of l, then closes it.
func collect(t *testing.T, l *cifar.Loader) []cifar.Batch {
	t.Helper()
	defer l.Close()
	var bs []cifar.Batch
	for b, ok := l.Next(); ok; b, ok = l.Next() {
		bs = append(bs, cifar.Batch{X: slices.Clone(b.X), Y: slices.Clone(b.Y), Idx: slices.Clone(b.Idx)})
	}
	return bs
}

func TestLoaderBatches(t *testing.T) {
	s := patternSet(50)
	norm := cifar100Norm(t)
	aug := &cifar.Augment{Pad: 4, Flip: true}
	for _, tc := range []struct {
		name              string
		order             []int
		batch, from       int
		workers, prefetch int
		aug               *cifar.Augment
		sizes             []int // of the batches returned
	}{
		{"Whole", shuffled(48), 16, 0, 1, 0, nil, []int{16, 16, 16}},
		{"PartialLast", shuffled(50), 16, 0, 2, 1, aug, []int{16, 16, 16, 2}},
		{"From", shuffled(50), 16, 2, 3, 2, aug, []int{16, 2}},
		{"FromLast", shuffled(50), 16, 3, 1, 1, aug, []int{2}},
		{"FromPastEnd", shuffled(50), 16, 4, 2, 2, aug, nil},
		{"FromFarPastEnd", shuffled(50), 16, 100, 2, 2, aug, nil},
		{"EmptyOrder", nil, 16, 0, 2, 2, aug, nil},
		{"BatchLargerThanSet", identity(50), 64, 0, 4, 3, nil, []int{50}},
		{"BatchOfOne", shuffled(5), 1, 0, 3, 4, aug, []int{1, 1, 1, 1, 1}},
		{"SubsetWithRepeats", []int{3, 3, 49, 0, 3}, 2, 0, 2, 1, aug, []int{2, 2, 1}},
		{"ManyWorkersSmallBatches", shuffled(50), 3, 1, 8, 6, aug, []int{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := cifar.LoaderConfig{BatchSize: tc.batch, Norm: norm, Augment: tc.aug, Seed: 11, Workers: tc.workers, Prefetch: tc.prefetch}
			bs := collect(t, cifar.NewLoader(s, cfg, 4, tc.order, tc.from))
			require.Len(t, bs, len(tc.sizes))
			for k, b := range bs {
				start := (tc.from + k) * tc.batch
				want := tc.order[start : start+tc.sizes[k]]
				require.Equal(t, want, b.Idx, "batch %d indices", tc.from+k)
				require.Len(t, b.Y, len(want))
				require.Len(t, b.X, len(want)*cifar.ImageLen)
				for j, i := range want {
					require.Equal(t, s.Labels[i], b.Y[j], "batch %d sample %d label", tc.from+k, j)
					require.Equal(t, fill(s, i, norm, tc.aug, 11, 4), b.X[j*cifar.ImageLen:(j+1)*cifar.ImageLen], "batch %d sample %d image", tc.from+k, j)
				}
			}
		})
	}
}

// TestLoaderDeterministic: the batches do not depend on the worker count, the prefetch depth or
// where the epoch was taken up; they do depend on the epoch and the seed.
func TestLoaderDeterministic(t *testing.T) {
	s := patternSet(300)
	order := shuffled(300)
	cfg := cifar.LoaderConfig{BatchSize: 32, Norm: cifar100Norm(t), Augment: &cifar.Augment{Pad: 4, Flip: true}, Seed: 5, Workers: 1, Prefetch: 0}
	one := collect(t, cifar.NewLoader(s, cfg, 2, order, 0))
	require.Len(t, one, 10)

	cfg.Workers, cfg.Prefetch = 4, 3
	assert.Equal(t, one, collect(t, cifar.NewLoader(s, cfg, 2, order, 0)), "1 worker vs 4")
	assert.Equal(t, one[6:], collect(t, cifar.NewLoader(s, cfg, 2, order, 6)), "resumed at batch 6")

	other := collect(t, cifar.NewLoader(s, cfg, 3, order, 0))
	assert.Equal(t, one[0].Idx, other[0].Idx)
	assert.NotEqual(t, one[0].X, other[0].X, "another epoch, other crops")
	cfg.Seed = 6
	assert.NotEqual(t, one[0].X, collect(t, cifar.NewLoader(s, cfg, 2, order, 0))[0].X, "another seed, other crops")
}

// TestLoaderReusesBuffers documents the validity rule: a Batch's buffers are recycled after the
// next Next, and Prefetch+1 buffers serve the whole epoch.
func TestLoaderReusesBuffers(t *testing.T) {
	s := patternSet(100)
	cfg := cifar.LoaderConfig{BatchSize: 10, Norm: cifar100Norm(t), Workers: 2, Prefetch: 2}
	l := cifar.NewLoader(s, cfg, 0, identity(100), 0)
	defer l.Close()
	buffers := make(map[*float32]bool)
	for b, ok := l.Next(); ok; b, ok = l.Next() {
		buffers[&b.X[0]] = true
	}
	assert.Len(t, buffers, 3)
}

// waitGoroutines waits until at most n goroutines run, failing after 10 s.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLoaderCloseLeaksNothing(t *testing.T) {
	s := patternSet(200)
	cfg := cifar.LoaderConfig{BatchSize: 8, Norm: cifar100Norm(t), Augment: &cifar.Augment{Pad: 4, Flip: true}, Workers: 4, Prefetch: 3}
	for _, tc := range []struct {
		name  string
		nexts int // Next calls before Close
	}{
		{"BeforeNext", 0},
		{"AfterOne", 1},
		{"Midway", 12},
		{"AtLast", 25},
		{"AfterEnd", 26},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			l := cifar.NewLoader(s, cfg, 0, shuffled(200), 0)
			if tc.nexts < 25 {
				assert.Greater(t, runtime.NumGoroutine(), base, "the loader runs goroutines")
			}
			for k := range tc.nexts {
				_, ok := l.Next()
				require.Equal(t, k < 25, ok, "Next %d", k)
			}
			l.Close()
			waitGoroutines(t, base)
			l.Close() // twice is fine
			_, ok := l.Next()
			assert.False(t, ok, "Next after Close")
		})
	}
}

func TestLoaderEndsItsGoroutinesAtTheEnd(t *testing.T) {
	base := runtime.NumGoroutine()
	l := cifar.NewLoader(patternSet(20), cifar.LoaderConfig{BatchSize: 8, Norm: cifar100Norm(t), Workers: 3, Prefetch: 1}, 0, identity(20), 0)
	for _, ok := l.Next(); ok; _, ok = l.Next() {
	}
	waitGoroutines(t, base) // without Close
	l.Close()
}

func TestLoaderPanics(t *testing.T) {
	s := patternSet(10)
	good := cifar.LoaderConfig{BatchSize: 4, Norm: cifar100Norm(t), Workers: 1, Prefetch: 1}
	for _, tc := range []struct {
		name  string
		edit  func(c *cifar.LoaderConfig)
		order []int
		from  int
		set   *cifar.Set
		want  string
	}{
		{"BatchSize", func(c *cifar.LoaderConfig) { c.BatchSize = 0 }, nil, 0, s,
			"cifar: NewLoader with BatchSize 0, Workers 1, Prefetch 1, from 0: want >= 1, >= 1, >= 0, >= 0"},
		{"Workers", func(c *cifar.LoaderConfig) { c.Workers = 0 }, nil, 0, s,
			"cifar: NewLoader with BatchSize 4, Workers 0, Prefetch 1, from 0: want >= 1, >= 1, >= 0, >= 0"},
		{"Prefetch", func(c *cifar.LoaderConfig) { c.Prefetch = -1 }, nil, 0, s,
			"cifar: NewLoader with BatchSize 4, Workers 1, Prefetch -1, from 0: want >= 1, >= 1, >= 0, >= 0"},
		{"From", func(c *cifar.LoaderConfig) {}, nil, -1, s,
			"cifar: NewLoader with BatchSize 4, Workers 1, Prefetch 1, from -1: want >= 1, >= 1, >= 0, >= 0"},
		{"OrderTooLarge", func(c *cifar.LoaderConfig) {}, []int{0, 10}, 0, s,
			"cifar: NewLoader: order[1] = 10 outside [0, 10)"},
		{"OrderNegative", func(c *cifar.LoaderConfig) {}, []int{-1}, 0, s,
			"cifar: NewLoader: order[0] = -1 outside [0, 10)"},
		{"Pad", func(c *cifar.LoaderConfig) { c.Augment = &cifar.Augment{Pad: 40} }, nil, 0, s,
			"cifar: Augment.Pad 40 outside 0..32"},
		{"BadSet", func(c *cifar.LoaderConfig) {}, nil, 0, &cifar.Set{Name: "bad", Images: make([]uint8, 10), Labels: make([]int64, 1)},
			`cifar: NewLoader over "bad": 10 image bytes for 1 labels`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			base := runtime.NumGoroutine()
			assert.PanicsWithValue(t, tc.want, func() { cifar.NewLoader(tc.set, cfg, 0, tc.order, tc.from) })
			assert.LessOrEqual(t, runtime.NumGoroutine(), base, "no goroutine started")
		})
	}
}

// BenchmarkLoader measures how fast 2 workers feed augmented batches of 128 (ResNet-50 on an
// H100 takes ~3000 images/s); the consumer only touches each batch.
func BenchmarkLoader(b *testing.B) {
	s := patternSet(10000)
	sp, _ := cifar.Official(cifar.CIFAR100)
	cfg := cifar.LoaderConfig{BatchSize: 128, Norm: sp.Norm, Augment: &cifar.Augment{Pad: 4, Flip: true}, Seed: 1, Workers: 2, Prefetch: 4}
	order := shuffled(s.Len())
	epoch := 0
	l := cifar.NewLoader(s, cfg, epoch, order, 0)
	samples := 0
	var sink float32
	for b.Loop() {
		batch, ok := l.Next()
		if !ok {
			l.Close()
			epoch++
			l = cifar.NewLoader(s, cfg, epoch, order, 0)
			batch, _ = l.Next()
		}
		sink += batch.X[len(batch.X)-1]
		samples += len(batch.Idx)
	}
	l.Close()
	b.ReportMetric(float64(samples)/b.Elapsed().Seconds(), "samples/s")
	_ = sink
}

// BenchmarkFill measures one goroutine filling augmented samples.
func BenchmarkFill(b *testing.B) {
	s := patternSet(1000)
	sp, _ := cifar.Official(cifar.CIFAR100)
	aug := &cifar.Augment{Pad: 4, Flip: true}
	dst := make([]float32, cifar.ImageLen)
	i := 0
	for b.Loop() {
		s.Fill(dst, i%s.Len(), sp.Norm, aug, 1, 0)
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "samples/s")
}
