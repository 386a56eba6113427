package train

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"spottrain/checkpoint"
	"spottrain/torch"
)

// ModelSpec is a network's architecture: all it takes to build it again, for instance to export a
// checkpoint's weights without the run's config and data. Every checkpoint holds one (model.json).
type ModelSpec struct {
	Kind string `json:"kind"` // "lstm" or "resnet"
	// lstm
	Inputs  int     `json:"inputs,omitempty"`
	Hidden  int     `json:"hidden,omitempty"`
	Layers  int     `json:"layers,omitempty"`
	Dropout float64 `json:"dropout,omitempty"`
	Horizon int     `json:"horizon,omitempty"`
	// StepHead: output j comes from step steps-horizon+j (the target hours' rows); else all
	// from the last step. Loss "" is plain MSE; mse, mae, huber the forecast losses of
	// torch.LSTMConfig.
	StepHead   bool    `json:"step_head,omitempty"`
	Loss       string  `json:"loss,omitempty"`
	HuberDelta float64 `json:"huber_delta,omitempty"`
	// resnet
	Depth     int     `json:"depth,omitempty"`
	Classes   int     `json:"classes,omitempty"`
	CIFARStem bool    `json:"cifar_stem,omitempty"`
	ZeroInit  bool    `json:"zero_init,omitempty"`
	Width     float64 `json:"width,omitempty"`
}

// Build makes the network on dev, initialised from libtorch's generator.
func (s ModelSpec) Build(dev torch.Device) (*torch.Net, error) {
	switch s.Kind {
	case "lstm":
		return torch.NewLSTM(torch.LSTMConfig{Inputs: s.Inputs, Hidden: s.Hidden, Layers: s.Layers, Dropout: s.Dropout,
			Horizon: s.Horizon, StepHead: s.StepHead, Loss: s.Loss, HuberDelta: s.HuberDelta}, dev)
	case "resnet":
		return torch.NewResNet(torch.ResNetConfig{Depth: s.Depth, Classes: s.Classes, CIFARStem: s.CIFARStem, ZeroInit: s.ZeroInit, Width: s.Width}, dev)
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

// Name names the network for people, e.g. "LSTM" or "ResNet-50".
func (s ModelSpec) Name() string {
	if s.Kind == "resnet" {
		return fmt.Sprintf("ResNet-%d", s.Depth)
	}
	return "LSTM"
}

// WeightsDigest loads a checkpoint's weights into the network its model.json describes, on the
// CPU, and returns the hex SHA-256 of every parameter and buffer (name, shape and bytes, in
// state_dict order): two checkpoints have the same digest exactly when their weights are bitwise
// equal, whatever their serialization bytes. It fails if the weights do not load.
func WeightsDigest(ck *checkpoint.Checkpoint) (string, error) {
	doc, err := ck.ReadFile(SpecFile)
	if err != nil {
		return "", err
	}
	spec, err := ParseModelSpec(doc)
	if err != nil {
		return "", err
	}
	net, err := spec.Build(torch.CPU)
	if err != nil {
		return "", err
	}
	defer net.Close()
	state, err := ck.ReadFile(ModelFile)
	if err != nil {
		return "", err
	}
	if err := net.LoadState(state); err != nil {
		return "", fmt.Errorf("%s: %s: %w", ck.Dir, ModelFile, err)
	}
	tensors, err := net.StateTensors()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, x := range tensors {
		fmt.Fprintf(h, "%s %v %d\n", x.Name, x.Shape, len(x.Data))
		h.Write(x.Data)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
