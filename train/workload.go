package train

import (
	"encoding/json"
	"fmt"
	"io"

	"spottrain/configs"
	"spottrain/data/solar"
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
	// Preprocessing returns what turns data into the network's inputs and its outputs into
	// results (JSON, stored in every checkpoint as PrepFile), or nil when there is nothing to
	// store.
	Preprocessing() []byte
	// Close stops background work (prefetching).
	Close()
}

// lstmSpec returns the forecaster that model section m describes for the windows of prep.
func lstmSpec(m *configs.LSTMModel, prep *solar.Preprocessing) ModelSpec {
	s := ModelSpec{Kind: "lstm", Inputs: len(prep.Features), Hidden: m.HiddenSize, Layers: m.NumLayers,
		Dropout: m.Dropout, Horizon: prep.Horizon, StepHead: prep.FutureInputs, Loss: m.Loss}
	if m.Loss == "huber" {
		s.HuberDelta = m.HuberDelta
	}
	return s
}

// newWorkload loads the data cfg names and makes its workload.
func newWorkload(cfg configs.Config, log io.Writer) (workload, error) {
	switch cfg.Model.Kind {
	case configs.KindLSTM:
		ds, err := LoadSolar(cfg.Data, cfg.Model, cfg.Seed)
		if err != nil {
			return nil, err
		}
		for _, r := range ds.Repairs {
			fmt.Fprintf(log, "data: repaired %s\n", r)
		}
		prep, err := json.Marshal(ds.Prep)
		if err != nil {
			return nil, err
		}
		return &solarWorkload{
			SolarTask: SolarTask{Data: ds.Dataset, EvalBatch: cfg.Train.EvalBatchSize},
			source:    ds.Source,
			spec:      lstmSpec(cfg.Model.LSTM, ds.Prep),
			prep:      prep,
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
	prep   []byte
}

func (w *solarWorkload) Preprocessing() []byte { return w.prep }
func (w *solarWorkload) Spec() ModelSpec       { return w.spec }
func (w *solarWorkload) Describe() string      { return w.source }
func (w *solarWorkload) Close()                {}
func (w *solarWorkload) Metrics() metrics.Set  { return metrics.Forecast }
func (w *solarWorkload) Samples() [3]int {
	return [3]int{w.Data.Train.N, w.Data.Val.N, w.Data.Test.N}
}
func (w *solarWorkload) Sizes() string {
	return fmt.Sprintf("windows train %d, val %d, test %d", w.Data.Train.N, w.Data.Val.N, w.Data.Test.N)
}
