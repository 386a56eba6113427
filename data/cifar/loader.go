package cifar

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// fillChunk is how many samples a worker fills per job: small enough to spread a batch over the
// workers, large enough that handing out jobs costs nothing next to filling (~4 µs a sample).
const fillChunk = 16

// LoaderConfig is what stays the same across the epochs of a run.
type LoaderConfig struct {
	BatchSize int      // samples per batch, >= 1; the last batch of an epoch may be smaller
	Norm      Norm     // normalization, e.g. Spec.Norm
	Augment   *Augment // nil: no augmentation (evaluation)
	Seed      uint64   // augmentation seed (with the epoch and the sample index)
	Workers   int      // goroutines filling samples, >= 1
	Prefetch  int      // batches filled ahead of the one the consumer holds, >= 0
}

// Batch is one batch in host memory, ready for the device.
type Batch struct {
	X   []float32 // len(Idx) images of ImageLen: shape (B, 3, 32, 32), normalized and augmented
	Y   []int64   // the labels of the samples, shape (B)
	Idx []int     // the sample indices, order[b*BatchSize:...] for batch b
}

// Loader assembles the batches of one epoch in the background.
//
// Batches come out in order; batch b holds the samples order[b*BatchSize : (b+1)*BatchSize] (the
// last one fewer), each filled as Set.Fill(x, i, Norm, Augment, Seed, epoch) would, so their
// content depends only on the Set, the config, the epoch and the order, never on Workers,
// Prefetch or timing: a run resumed at batch `from` sees the very batches it would have seen.
//
// Memory is bounded: the Loader owns Prefetch+1 batch buffers, allocated by NewLoader and reused.
// A Batch returned by Next is valid until the next call of Next or Close, which hand its buffers
// back for refilling; copy what must outlive that.
//
// A Loader is used by one goroutine: Next and Close must not be called concurrently.
type Loader struct {
	batches chan *slot // slots in batch order, as they are handed to the workers; closed after the last
	free    chan *slot // slots available for the next batch
	done    chan struct{}
	wg      sync.WaitGroup
	held    *slot // the slot of the Batch the consumer holds
	closed  bool
}

// slot is one batch buffer and its state.
type slot struct {
	x       []float32
	y       []int64
	idx     []int
	pending atomic.Int32  // jobs of the batch not done yet
	ready   chan struct{} // receives once the batch is filled; capacity 1
}

// job asks a worker to fill samples lo..hi-1 of a slot's batch.
type job struct {
	s      *slot
	lo, hi int
}

// NewLoader starts assembling the batches of epoch over s, taking samples in the given order (a
// permutation of the sample indices from the training loop, or any list of indices, e.g. 0..n-1
// for evaluation), from batch `from` on: 0 for a fresh epoch, a checkpoint's batch for a resumed
// one (from at or past the last batch gives a Loader without batches). It starts cfg.Workers + 1
// goroutines; they end by themselves once Next has returned the last batch, or at Close. Call
// Close in any case (defer it): an epoch abandoned midway keeps them waiting until then.
//
// NewLoader panics on a programmer's mistake: a config field out of its range, from < 0, an index
// of order outside [0, s.Len()), or a Set whose Images are not Len()*ImageLen bytes.
func NewLoader(s *Set, cfg LoaderConfig, epoch int, order []int, from int) *Loader {
	switch {
	case cfg.BatchSize < 1 || cfg.Workers < 1 || cfg.Prefetch < 0 || from < 0:
		panic(fmt.Sprintf("cifar: NewLoader with BatchSize %d, Workers %d, Prefetch %d, from %d: want >= 1, >= 1, >= 0, >= 0",
			cfg.BatchSize, cfg.Workers, cfg.Prefetch, from))
	case len(s.Images) != s.Len()*ImageLen:
		panic(fmt.Sprintf("cifar: NewLoader over %q: %d image bytes for %d labels", s.Name, len(s.Images), s.Len()))
	}
	for k, i := range order {
		if i < 0 || i >= s.Len() {
			panic(fmt.Sprintf("cifar: NewLoader: order[%d] = %d outside [0, %d)", k, i, s.Len()))
		}
	}
	if cfg.Augment != nil {
		checkAugment(cfg.Augment)
	}
	nslots := cfg.Prefetch + 1
	l := &Loader{
		batches: make(chan *slot, nslots),
		free:    make(chan *slot, nslots),
		done:    make(chan struct{}),
	}
	for range nslots {
		l.free <- &slot{
			x:     make([]float32, cfg.BatchSize*ImageLen),
			y:     make([]int64, cfg.BatchSize),
			idx:   make([]int, cfg.BatchSize),
			ready: make(chan struct{}, 1),
		}
	}
	jobs := make(chan job, cfg.Workers)
	t := cfg.Norm.lut()
	l.wg.Add(cfg.Workers + 1)
	go l.dispatch(s, cfg.BatchSize, order, from, jobs)
	for range cfg.Workers {
		go l.work(s, t, cfg.Augment, cfg.Seed, epoch, jobs)
	}
	return l
}

// dispatch takes a free slot for each batch in turn, queues it for Next and hands its samples to
// the workers in jobs.
func (l *Loader) dispatch(s *Set, bs int, order []int, from int, jobs chan<- job) {
	defer l.wg.Done()
	defer close(jobs)
	defer close(l.batches)
	for b := from; b*bs < len(order); b++ {
		var sl *slot
		select {
		case sl = <-l.free:
		case <-l.done:
			return
		}
		idx := order[b*bs : min((b+1)*bs, len(order))]
		n := len(idx)
		sl.idx = sl.idx[:n]
		copy(sl.idx, idx)
		sl.y = sl.y[:n]
		for k, i := range idx {
			sl.y[k] = s.Labels[i]
		}
		sl.x = sl.x[:n*ImageLen]
		sl.pending.Store(int32((n + fillChunk - 1) / fillChunk))
		l.batches <- sl // never blocks: the channel holds every slot
		for lo := 0; lo < n; lo += fillChunk {
			select {
			case jobs <- job{sl, lo, min(lo+fillChunk, n)}:
			case <-l.done:
				return
			}
		}
	}
}

// work fills the samples of jobs until there are no more or the Loader is closed.
func (l *Loader) work(s *Set, t *lut, aug *Augment, seed uint64, epoch int, jobs <-chan job) {
	defer l.wg.Done()
	for {
		select {
		case j, ok := <-jobs:
			if !ok {
				return
			}
			for k := j.lo; k < j.hi; k++ {
				s.fill(j.s.x[k*ImageLen:(k+1)*ImageLen], j.s.idx[k], t, aug, seed, epoch)
			}
			if j.s.pending.Add(-1) == 0 {
				j.s.ready <- struct{}{}
			}
		case <-l.done:
			return
		}
	}
}

// Next returns the next batch of the epoch, waiting for it if need be, and hands the buffers of
// the previous one back for refilling. It returns false after the last batch and after Close.
func (l *Loader) Next() (Batch, bool) {
	if l.closed {
		return Batch{}, false
	}
	if l.held != nil {
		l.free <- l.held // never blocks: the channel holds every slot
		l.held = nil
	}
	sl, ok := <-l.batches
	if !ok {
		return Batch{}, false
	}
	<-sl.ready
	l.held = sl
	return Batch{X: sl.x, Y: sl.y, Idx: sl.idx}, true
}

// Close stops the Loader's goroutines and waits until they have ended, so an epoch abandoned
// midway (preemption, a step limit) leaks nothing. The Batch last returned becomes invalid. Close
// may be called more than once, also after the last batch; Next after Close returns false.
func (l *Loader) Close() {
	if !l.closed {
		l.closed = true
		close(l.done)
	}
	l.wg.Wait()
	l.held = nil
}
