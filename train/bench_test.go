package train_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/torch"
)

// benchState builds a model whose checkpoint is the size of ResNet-50's with SGD momentum: about
// 23.7M parameters, so weights + momentum ~190 MB. One LSTM layer of hidden 2430 has 23.7M.
func benchState(b *testing.B) (model, optim, rng []byte) {
	b.Helper()
	torch.SetNumThreads(2)
	net, err := torch.NewLSTM(torch.LSTMConfig{Inputs: 8, Hidden: 2430, Layers: 1, Horizon: 24}, torch.CPU)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { net.Close() })
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "sgd", LR: 0.01, Momentum: 0.9})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { opt.Close() })
	x, y := make([]float32, 2*4*8), make([]float32, 2*24)
	if err := net.TrainStep(opt, torch.Float32s(x, 2, 4, 8), torch.Float32s(y, 2, 24), 0.01, 0); err != nil {
		b.Fatal(err) // a step, so that the momentum buffers exist
	}
	snapshot := func() *torch.Snapshot {
		snap, err := torch.TakeSnapshot(net, opt)
		if err != nil {
			b.Fatal(err)
		}
		return snap
	}
	serialize := func(snap *torch.Snapshot) {
		defer snap.Close()
		if model, err = snap.Model(); err != nil {
			b.Fatal(err)
		}
		if optim, err = snap.Optimizer(); err != nil {
			b.Fatal(err)
		}
		if rng, err = snap.RNG(); err != nil {
			b.Fatal(err)
		}
	}
	serialize(snapshot())
	size := float64(len(model)+len(optim)+len(rng)) / 1e6
	b.Run("snapshot", func(b *testing.B) { // the blocking part
		for i := 0; i < b.N; i++ {
			snapshot().Close()
		}
		b.ReportMetric(size, "MB")
	})
	b.Run("serialize", func(b *testing.B) { // the first half of the persist, in the background
		for i := 0; i < b.N; i++ {
			serialize(snapshot())
		}
		b.ReportMetric(size, "MB")
	})
	return model, optim, rng
}

// BenchmarkCheckpoint compares, for a ResNet-50-sized state (set SPOTTRAIN_BENCH_DIR to measure
// another disk than the temp dir's):
//   - snapshot: the blocking part of a checkpoint (a copy of the state in host memory);
//   - serialize: snapshot and torch serialization of it (the persist's first half, off the loop);
//   - checkpoint: committing the serialized state to the store (the persist's second half): temp
//     dir, hashed and fsynced payload files, manifest, renames, directory fsyncs;
//   - raw: the disk's own sequential write of the same bytes into one file with one fsync.
//
// scripts/bench/checkpoint.sh prints their ratios.
func BenchmarkCheckpoint(b *testing.B) {
	model, optim, rng := benchState(b)
	size := int64(len(model) + len(optim) + len(rng))
	dir := b.TempDir()
	if d := os.Getenv("SPOTTRAIN_BENCH_DIR"); d != "" {
		var err error
		if dir, err = os.MkdirTemp(d, "bench-"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}

	b.Run("checkpoint", func(b *testing.B) {
		b.SetBytes(size)
		store, err := checkpoint.Open(filepath.Join(dir, "run"), checkpoint.Options{Keep: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer store.Close()
		for i := 0; i < b.N; i++ {
			p, err := store.Begin(int64(i + 1))
			if err != nil {
				b.Fatal(err)
			}
			for name, data := range map[string][]byte{"model.pt": model, "optim.pt": optim, "rng.pt": rng} {
				if err := p.Write(name, data); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := p.Commit(checkpoint.Manifest{Step: int64(i + 1), Reason: codes.Periodic, Time: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("raw", func(b *testing.B) {
		b.SetBytes(size)
		buf := append(append(append([]byte(nil), model...), optim...), rng...)
		for i := 0; i < b.N; i++ {
			path := filepath.Join(dir, "raw.bin")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			os.Remove(path)
		}
	})
}
