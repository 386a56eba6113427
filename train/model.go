package train

import (
	"encoding/json"
	"fmt"

	"spottrain/torch"
)

// ModelSpec is a network's architecture: all it takes to build it again, for instance to export a
// checkpoint's weights without the run's config and data. Every checkpoint holds one (model.json).
type ModelSpec struct {
	Kind    string  `json:"kind"` // "lstm"
	Inputs  int     `json:"inputs"`
	Hidden  int     `json:"hidden"`
	Layers  int     `json:"layers"`
	Dropout float64 `json:"dropout"`
	Horizon int     `json:"horizon"`
}

// Build makes the network on dev, initialised from libtorch's generator.
func (s ModelSpec) Build(dev torch.Device) (*torch.Net, error) {
	switch s.Kind {
	case "lstm":
		return torch.NewLSTM(torch.LSTMConfig{Inputs: s.Inputs, Hidden: s.Hidden, Layers: s.Layers, Dropout: s.Dropout, Horizon: s.Horizon}, dev)
	default:
		return nil, fmt.Errorf("unknown model kind %q", s.Kind)
	}
}

// ParseModelSpec decodes a model.json.
func ParseModelSpec(data []byte) (ModelSpec, error) {
	var s ModelSpec
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("model spec: %w", err)
	}
	return s, nil
}
