package train

import (
	"fmt"
	"runtime"
	"slices"

	"spottrain/configs"
	"spottrain/data/cifar"
	"spottrain/metrics"
	"spottrain/torch"
)

// ImageTask is image classification on CIFAR-shaped data: training batches are assembled (and
// augmented) by background goroutines ahead of the step that needs them, and evaluation scores
// top-1 and top-5 accuracy on the test set.
type ImageTask struct {
	TrainSet, TestSet *cifar.Set
	Loader            cifar.LoaderConfig // batch size, normalization, augmentation, seed, workers
	EvalBatch         int
	loader            *cifar.Loader // the epoch being trained
}

// TrainSize implements Task.
func (t *ImageTask) TrainSize() int { return t.TrainSet.Len() }

// setShare implements sharer: the loader's batches are n samples, this process's share of a
// global batch.
func (t *ImageTask) setShare(n int) { t.Loader.BatchSize = n }

// StartEpoch implements EpochStarter: it starts assembling the epoch's batches from batch `from`.
func (t *ImageTask) StartEpoch(epoch int, order []int, from int) {
	t.Close()
	t.loader = cifar.NewLoader(t.TrainSet, t.Loader, epoch, order, from)
}

// Batch implements Task with the loader's next batch, which must hold the samples idx: the loop
// asks for batches in the order StartEpoch was given.
func (t *ImageTask) Batch(idx []int) (x, y torch.Host) {
	b, ok := t.loader.Next()
	if !ok || !slices.Equal(b.Idx, idx) {
		panic(fmt.Sprintf("image task: batch of samples %v asked, the loader has %v", idx[:min(4, len(idx))], b.Idx[:min(4, len(b.Idx))]))
	}
	n := int64(len(b.Idx))
	return torch.Float32s(b.X, n, cifar.Channels, cifar.Side, cifar.Side), torch.Int64s(b.Y, n)
}

// Evaluate implements Task on the test set (CIFAR has no separate validation split).
func (t *ImageTask) Evaluate(net *torch.Net, shard Shard, abandon func() bool) (Metrics, error) {
	return t.Test(net, shard, abandon)
}

// Test returns the top-1 and top-k accuracy (in [0, 1]; metrics.Classification) of net on the
// test set: the images of shard's parts are scored here, the shards' counts added up. It calls
// abandon (nil: never) before each part, and returns ErrAbandoned when it says so.
func (t *ImageTask) Test(net *torch.Net, shard Shard, abandon func() bool) (Metrics, error) {
	set := t.TestSet
	parts := shard.Parts(set.Len(), t.EvalBatch)
	var order []int
	for _, p := range parts {
		for i := p[0]; i < p[1]; i++ {
			order = append(order, i)
		}
	}
	cfg := t.Loader
	cfg.BatchSize, cfg.Augment = max(parts[0][1]-parts[0][0], 1), nil
	l := cifar.NewLoader(set, cfg, 0, order, 0)
	defer l.Close()
	k := min(5, set.Classes)
	logits := make([]float32, cfg.BatchSize*set.Classes)
	var counts [2]float64 // top-1, top-k
	for _, p := range parts {
		if abandon != nil && abandon() {
			return nil, ErrAbandoned
		}
		if p[0] == p[1] {
			continue
		}
		b, ok := l.Next()
		if !ok {
			return nil, fmt.Errorf("image task: the loader ended before the test set's part %v", p)
		}
		n := len(b.Idx)
		x := torch.Float32s(b.X, int64(n), cifar.Channels, cifar.Side, cifar.Side)
		if err := net.Forward(x, logits[:n*set.Classes]); err != nil {
			return nil, err
		}
		for i, label := range b.Y {
			row := logits[i*set.Classes : (i+1)*set.Classes]
			// The label's rank: how many classes score higher than it.
			rank := 0
			for _, v := range row {
				if v > row[label] {
					rank++
				}
			}
			if rank == 0 {
				counts[0]++
			}
			if rank < k {
				counts[1]++
			}
		}
	}
	if err := shard.sum(counts[:]); err != nil {
		return nil, err
	}
	n := float64(set.Len())
	names := metrics.Classification(set.Classes)
	return Metrics{names[0].Name: counts[0] / n, names[1].Name: counts[1] / n}, nil
}

// Close stops the training loader's goroutines.
func (t *ImageTask) Close() {
	if t.loader != nil {
		t.loader.Close()
		t.loader = nil
	}
}

type imageWorkload struct {
	ImageTask
	source string
	spec   ModelSpec
}

func (w *imageWorkload) Metrics() metrics.Set { return metrics.Classification(w.TestSet.Classes) }

// newImageWorkload loads the images cfg names and makes their workload; cfg is a ResNet config.
// The loop sets the size of its batches (setShare) before it starts an epoch.
func newImageWorkload(cfg configs.Config) (*imageWorkload, error) {
	d, r := cfg.Data, cfg.Data.ResNet
	w := &imageWorkload{source: d.Source}
	var norm cifar.Norm
	switch d.Source {
	case "synthetic-cifar":
		w.TrainSet, w.TestSet = cifar.Synthetic(r.SyntheticSamples, max(r.SyntheticSamples/5, 1), r.Classes, cfg.Seed)
		norm = w.TrainSet.Norm()
	default:
		spec, err := cifar.Official(cifar.Kind(d.Source))
		if err != nil {
			return nil, err
		}
		if w.TrainSet, w.TestSet, err = spec.Load(d.Path); err != nil {
			return nil, err
		}
		norm, w.source = spec.Norm, spec.Title+" "+d.Path
	}
	workers := r.Workers
	if workers == 0 {
		workers = runtime.NumCPU()
	}
	w.Loader = cifar.LoaderConfig{BatchSize: cfg.Train.BatchSize, Norm: norm, Seed: cfg.Seed, Workers: workers, Prefetch: 4}
	if r.Augment {
		w.Loader.Augment = &cifar.Augment{Pad: 4, Flip: true}
	}
	w.EvalBatch = cfg.Train.EvalBatchSize
	m := cfg.Model.ResNet
	w.spec = ModelSpec{Kind: "resnet", Depth: m.Depth, Classes: w.TrainSet.Classes, CIFARStem: m.Stem == "cifar",
		ZeroInit: m.ZeroInitResidual, Width: m.Width}
	return w, nil
}

func (w *imageWorkload) Spec() ModelSpec       { return w.spec }
func (w *imageWorkload) Preprocessing() []byte { return nil }
func (w *imageWorkload) Describe() string      { return w.source }
func (w *imageWorkload) Samples() [3]int       { return [3]int{w.TrainSet.Len(), 0, w.TestSet.Len()} }
func (w *imageWorkload) Sizes() string {
	return fmt.Sprintf("images train %d, test %d, %d classes", w.TrainSet.Len(), w.TestSet.Len(), w.TrainSet.Classes)
}
