package train

import (
	"fmt"
	"io"

	"spottrain/configs"
	"spottrain/metrics"
	"spottrain/torch"
)

// workload is a Task with what a job needs around the loop: the network to build, the final test
// scoring, and words for the log.
type workload interface {
	Task
	// Spec returns the network the workload trains.
	Spec() ModelSpec
	// Test scores net on the held-out test split: its shard, as Task.Evaluate, and abandoned
	// (ErrAbandoned) as Task.Evaluate is.
	Test(net *torch.Net, shard Shard, abandon func() bool) (Metrics, error)
	// Metrics declares the validation and test metrics, the main one first.
	Metrics() metrics.Set
	// Samples returns the sizes of the train, validation and test splits (0: none).
	Samples() [3]int
	// Describe names the data, e.g. "synthetic" or a file.
	Describe() string
	// Sizes describes the splits for the log.
	Sizes() string
	// Close stops background work (prefetching).
	Close()
}

// newWorkload loads the data cfg names and makes its workload.
func newWorkload(cfg configs.Config, log io.Writer) (workload, error) {
	switch cfg.Model.Kind {
	case configs.KindLSTM:
		ds, err := LoadSolar(cfg.Data, cfg.Seed)
		if err != nil {
			return nil, err
		}
		for _, r := range ds.Repairs {
			fmt.Fprintf(log, "data: repaired %s\n", r)
		}
		m := cfg.Model.LSTM
		return &solarWorkload{
			SolarTask: SolarTask{Data: ds.Dataset, EvalBatch: cfg.Train.EvalBatchSize},
			source:    ds.Source,
			spec: ModelSpec{Kind: "lstm", Inputs: ds.Train.Features, Hidden: m.HiddenSize, Layers: m.NumLayers,
				Dropout: m.Dropout, Horizon: ds.Train.Horizon},
		}, nil
	case configs.KindResNet:
		return newImageWorkload(cfg)
	default:
		return nil, fmt.Errorf("unknown model kind %q", cfg.Model.Kind)
	}
}

// netOptions returns how the network of cfg trains: its precision, and for a ResNet its label
// smoothing and memory format.
func netOptions(cfg configs.Config) torch.NetOptions {
	o := torch.NetOptions{BF16: cfg.Train.Precision == "bf16"}
	if r := cfg.Train.ResNet; r != nil {
		o.LabelSmoothing, o.ChannelsLast = r.LabelSmoothing, r.ChannelsLast
	}
	return o
}

type solarWorkload struct {
	SolarTask
	source string
	spec   ModelSpec
}

func (w *solarWorkload) Spec() ModelSpec      { return w.spec }
func (w *solarWorkload) Describe() string     { return w.source }
func (w *solarWorkload) Close()               {}
func (w *solarWorkload) Metrics() metrics.Set { return metrics.Forecast }
func (w *solarWorkload) Samples() [3]int {
	return [3]int{w.Data.Train.N, w.Data.Val.N, w.Data.Test.N}
}
func (w *solarWorkload) Sizes() string {
	return fmt.Sprintf("windows train %d, val %d, test %d", w.Data.Train.N, w.Data.Val.N, w.Data.Test.N)
}
