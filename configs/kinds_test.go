package configs_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"spottrain/configs"
)

// keys returns the dotted keys of the leaves of a YAML document.
func keys(t *testing.T, doc []byte) []string {
	t.Helper()
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(doc, &root))
	var out []string
	var walk func(n *yaml.Node, key string)
	walk = func(n *yaml.Node, key string) {
		if n.Kind != yaml.MappingNode {
			out = append(out, key)
			return
		}
		for i := 0; i < len(n.Content); i += 2 {
			sub := n.Content[i].Value
			if key != "" {
				sub = key + "." + sub
			}
			walk(n.Content[i+1], sub)
		}
	}
	walk(root.Content[0], "")
	return out
}

// TestShowHasOnlyItsKind: config show (with and without origins) of an experiment shows the keys
// of its model kind and none of the other's.
func TestShowHasOnlyItsKind(t *testing.T) {
	for _, tc := range []struct {
		experiment   string
		want, absent []string
	}{
		{"lstm-ondemand", []string{"model.lstm.hidden_size", "data.lstm.lookback_hours", "data.lstm.days"},
			[]string{"depth", "stem", "width", "zero_init_residual", "classes", "synthetic_samples", "workers", "augment", "label_smoothing", "channels_last", "resnet"}},
		{"resnet50-ondemand", []string{"model.resnet.depth", "data.resnet.workers", "train.resnet.label_smoothing", "train.resnet.channels_last"},
			[]string{"hidden_size", "num_layers", "dropout", "lookback_hours", "horizon_hours", "days", "latitude", "capacity_kw", "timestamp_column", "train_frac", "lstm"}},
	} {
		for _, origins := range []bool{false, true} {
			doc, err := configs.Builtin().ShowExperiment(tc.experiment, nil, origins)
			require.NoError(t, err)
			got := keys(t, doc)
			for _, k := range tc.want {
				assert.Contains(t, got, k, "%s (origins %v)", tc.experiment, origins)
			}
			for _, k := range got {
				for _, part := range strings.Split(k, ".") {
					assert.NotContains(t, tc.absent, part, "%s shows %s (origins %v)", tc.experiment, k, origins)
				}
			}
		}
	}
}

// TestKindErrors: a key in its old flat place, or a subsection of the other kind, is one error
// naming the file, the line and where the key went.
func TestKindErrors(t *testing.T) {
	tests := []struct {
		name, doc string
		sets      []string
		want      string
	}{
		{"MovedModelKey", "name: x\nmodel:\n  kind: resnet\n  depth: 34\ndata: {source: cifar10}\n", nil,
			"my.yaml:4: model.depth: moved to model.resnet.depth"},
		{"MovedDataKey", "model:\n  kind: resnet\ndata:\n  source: synthetic-cifar\n  workers: 2\n", nil,
			"my.yaml:5: data.workers: moved to data.resnet.workers"},
		{"MovedTrainKey", "model: {kind: resnet}\ndata: {source: cifar10}\ntrain:\n  label_smoothing: 0.1\n", nil,
			"my.yaml:4: train.label_smoothing: moved to train.resnet.label_smoothing"},
		{"MovedLSTMKey", "data:\n  lookback_hours: 5\n", nil,
			"my.yaml:2: data.lookback_hours: moved to data.lstm.lookback_hours"},
		{"MovedKeyOfOtherKind", "seed: 1\nmodel:\n  depth: 34\n", nil,
			"my.yaml:3: model.depth: moved to model.resnet.depth, only for model.kind resnet (model.kind is lstm)"},
		{"SetMovedKey", "seed: 1\n", []string{"model.depth=34"},
			"--set model.depth=34: model.depth: moved to model.resnet.depth, only for model.kind resnet (model.kind is lstm)"},
		{"OtherKindsSection", "seed: 1\nmodel:\n  kind: lstm\n  lstm:\n    hidden_size: 8\n  resnet:\n    depth: 34\n", nil,
			"my.yaml:6: model.resnet: only for model.kind resnet (model.kind is lstm)"},
		{"OtherKindsDataSection", "model: {kind: resnet}\ndata:\n  source: cifar10\n  lstm: {days: 30}\n", nil,
			"my.yaml:4: data.lstm: only for model.kind lstm (model.kind is resnet)"},
		{"SetOtherKindsSection", "seed: 1\n", []string{"train.resnet.channels_last=true"},
			"--set train.resnet.channels_last=true: train.resnet: only for model.kind resnet (model.kind is lstm)"},
		{"KindFromSet", "model:\n  lstm: {hidden_size: 8}\ndata: {source: cifar10}\n", []string{"model.kind=resnet"},
			"my.yaml:2: model.lstm: only for model.kind lstm (model.kind is resnet)"},
		{"BadKind", "model:\n  kind: [lstm]\n", nil, `my.yaml:2: model.kind: must be a string (got a list of 1)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configs.LoadBytes("my.yaml", []byte(tt.doc), "", tt.sets)
			require.Error(t, err)
			assert.Equal(t, tt.want, err.Error())
		})
	}
}

// TestKindErrorInLayer: the error names the layer file of the tree that holds the key.
func TestKindErrorInLayer(t *testing.T) {
	tr, dir := tree(t, map[string]string{
		"models/m.yaml":      "model:\n  kind: lstm\n",
		"experiments/x.yaml": "layers: {model: m}\ninterrupts:\n  pattern: none\ndata:\n  source: synthetic\n  lookback_hours: 24\n  days: 30\n",
	})
	_, err := tr.Experiment("x", nil)
	require.Error(t, err)
	assert.Equal(t, dir+"/experiments/x.yaml:6: data.lookback_hours: moved to data.lstm.lookback_hours", err.Error())
}

// TestValidateKindSections: a Config built in Go has exactly its kind's subsections.
func TestValidateKindSections(t *testing.T) {
	c := configs.Default()
	c.Model.ResNet = &configs.ResNetModel{Depth: 18, Width: 1, Stem: "cifar"}
	assert.Equal(t, &configs.Error{Key: "model.resnet", Msg: "only for model.kind resnet (model.kind is lstm)"}, c.Validate())

	c = configs.DefaultFor(configs.KindResNet)
	c.Data.Source = "synthetic-cifar"
	require.NoError(t, c.Validate())
	c.Train.ResNet = nil
	assert.Equal(t, &configs.Error{Key: "train.resnet", Msg: "required for model.kind resnet"}, c.Validate())
}

// TestKindsAreIndependent: a ResNet config is no longer refused for an LSTM key's value
// (data.lookback_hours: 5 was out of range), since it has no such key; and an LSTM config's
// hash and resume diff see no ResNet key.
func TestKindsAreIndependent(t *testing.T) {
	r := configs.DefaultFor(configs.KindResNet)
	r.Data.Source = "cifar10"
	r.Data.Path = "data/cifar-10-binary.tar.gz"
	require.NoError(t, r.Validate())
	doc, err := r.YAML()
	require.NoError(t, err)
	assert.NotContains(t, string(doc), "lookback_hours")

	a, err := configs.Builtin().Experiment("lstm-ondemand", nil)
	require.NoError(t, err)
	_, err = configs.Builtin().Experiment("lstm-ondemand", []string{"model.depth=34"})
	assert.EqualError(t, err, "--set model.depth=34: model.depth: moved to model.resnet.depth, only for model.kind resnet (model.kind is lstm)")

	// A saved LSTM config has no ResNet key a resume could trip on: only its own keys differ.
	b, err := configs.Builtin().Experiment("lstm-ondemand", []string{"model.lstm.hidden_size=32", "device=cpu"})
	require.NoError(t, err)
	var got []string
	for _, c := range configs.Diff(a, b) {
		got = append(got, c.String())
		assert.Equal(t, c.Key == "model.lstm.hidden_size", c.Breaks, c.Key)
	}
	assert.Equal(t, []string{"device: auto -> cpu", "model.lstm.hidden_size: 64 -> 32"}, got)
}
