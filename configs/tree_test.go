package configs_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"spottrain/configs"
	"spottrain/internal/testutil"
)

// TestBuiltinGrid checks the shipped grid: for each model, each strategy under each pattern, plus
// an on-demand baseline, all loading from the embedded tree.
func TestBuiltinGrid(t *testing.T) {
	tree := configs.Builtin()
	models, err := tree.List(configs.Models)
	require.NoError(t, err)
	assert.Equal(t, []string{"lstm-solar", "resnet-small", "resnet50-cifar100"}, models)
	strategies, err := tree.List(configs.Strategies)
	require.NoError(t, err)
	assert.Equal(t, []string{"adaptive", "fixed", "milestone"}, strategies)

	short := map[string]string{"lstm-solar": "lstm", "resnet-small": "resnet-small", "resnet50-cifar100": "resnet50"}
	want := map[string]bool{}
	for _, m := range models {
		want[short[m]+"-ondemand"] = true
		for _, s := range strategies {
			for _, p := range []string{"regular", "poisson", "bursty"} {
				want[fmt.Sprintf("%s-%s-%s", short[m], s, p)] = true
			}
		}
	}
	experiments, err := tree.List(configs.Experiments)
	require.NoError(t, err)
	require.Len(t, experiments, len(want))
	for _, name := range experiments {
		require.True(t, want[name], "unexpected experiment %s", name)
		c, err := tree.Experiment(name, nil)
		require.NoError(t, err, name)
		assert.Equal(t, name, c.Name)
		assert.Equal(t, filepath.Join("runs", name), c.RunDir)
		parts := strings.Split(strings.TrimPrefix(name, short[c.Layers.Model]+"-"), "-")
		require.Contains(t, short, c.Layers.Model, name)
		if parts[0] == "ondemand" {
			assert.Equal(t, "none", c.Interrupts.Pattern, name)
			assert.Equal(t, "fixed", c.Checkpoint.Strategy, name)
			continue
		}
		assert.Equal(t, parts[0], c.Checkpoint.Strategy, name)
		assert.Equal(t, parts[0], c.Layers.Strategy, name)
		assert.Equal(t, parts[1], c.Interrupts.Pattern, name)
		assert.Greater(t, c.Interrupts.TimeScale, 1.0, "%s: the model layer speeds spot time up", name)
	}
}

// tree writes a config tree of files (path -> content) and returns it.
func tree(t *testing.T, files map[string]string) (configs.Tree, string) {
	t.Helper()
	dir := t.TempDir()
	for name, doc := range files {
		testutil.WriteFile(t, filepath.Join(dir, name), doc)
	}
	return configs.DirTree(dir), dir
}

// TestLayerPrecedence: defaults < model < strategy < experiment < --set, key by key, and every
// value's origin as config show --origins reports it.
func TestLayerPrecedence(t *testing.T) {
	tr, dir := tree(t, map[string]string{
		"models/m.yaml": `model:
  lstm:
    hidden_size: 11
train:
  epochs: 11
  batch_size: 11
  log_every: 11
`,
		"strategies/s.yaml": `train:
  batch_size: 22
  log_every: 22
checkpoint:
  strategy: adaptive
`,
		"experiments/e.yaml": `layers:
  model: m
  strategy: s
train:
  log_every: 33
  grad_clip: 0.5
interrupts:
  pattern: poisson
  rate_per_hour: 3
  restart_delay: 90s
`,
	})
	c, err := tr.Experiment("e", []string{"train.grad_clip=0.25", "interrupts.time_scale=60"})
	require.NoError(t, err)
	def := configs.Default()
	for _, tt := range []struct {
		key       string
		got, want any
		origin    string
	}{
		{"model.lstm.num_layers", c.Model.LSTM.NumLayers, def.Model.LSTM.NumLayers, "default"},
		{"model.lstm.hidden_size", c.Model.LSTM.HiddenSize, 11, "models/m.yaml:3"},
		{"train.epochs", c.Train.Epochs, 11, "models/m.yaml:5"},
		{"train.batch_size", c.Train.BatchSize, 22, "strategies/s.yaml:2"},
		{"checkpoint.strategy", c.Checkpoint.Strategy, "adaptive", "strategies/s.yaml:5"},
		{"train.log_every", c.Train.LogEvery, 33, "experiments/e.yaml:5"},
		{"interrupts.rate_per_hour", c.Interrupts.RatePerHour, 3.0, "experiments/e.yaml:9"},
		{"interrupts.restart_delay", c.Interrupts.RestartDelay, 90 * time.Second, "experiments/e.yaml:10"},
		{"train.grad_clip", c.Train.GradClip, 0.25, "--set train.grad_clip=0.25"},
		{"interrupts.time_scale", c.Interrupts.TimeScale, 60.0, "--set interrupts.time_scale=60"},
		{"name", c.Name, "e", "experiments/e.yaml (its file name)"},
		{"layers.model", c.Layers.Model, "m", "experiments/e.yaml:2"},
	} {
		assert.Equal(t, tt.want, tt.got, tt.key)
		assert.Equal(t, filepath.Join(dir, tt.origin), origin(t, tr, "e", tt.key), tt.key)
	}
}

// origin returns the comment config show --origins puts on key, with the tree's folder as in
// a file name.
func origin(t *testing.T, tr configs.Tree, experiment, key string) string {
	t.Helper()
	doc, err := tr.ShowExperiment(experiment, []string{"train.grad_clip=0.25", "interrupts.time_scale=60"}, true)
	require.NoError(t, err)
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(doc, &root))
	n := root.Content[0]
	parts := strings.Split(key, ".")
	for i, p := range parts {
		j := 0
		for ; j < len(n.Content) && n.Content[j].Value != p; j += 2 {
		}
		require.Less(t, j, len(n.Content), key)
		if i == len(parts)-1 {
			c := n.Content[j].LineComment + n.Content[j+1].LineComment // the parser puts it on either
			c = strings.TrimPrefix(c, "# ")
			if c == "default" || strings.HasPrefix(c, "--set") {
				return filepath.Join(tr.String(), c) // compared against dir joined with the origin
			}
			return c
		}
		n = n.Content[j+1]
	}
	return ""
}

// TestShowIsLoadable: the merged YAML config show prints, with or without origins, loads back as
// the same config.
func TestShowIsLoadable(t *testing.T) {
	for _, origins := range []bool{false, true} {
		doc, err := configs.Builtin().ShowExperiment("lstm-adaptive-bursty", []string{"train.epochs=2"}, origins)
		require.NoError(t, err)
		path := testutil.WriteTemp(t, "shown.yaml", string(doc))
		got, err := configs.ReadSaved(path)
		require.NoError(t, err)
		want, err := configs.Builtin().Experiment("lstm-adaptive-bursty", []string{"train.epochs=2"})
		require.NoError(t, err)
		assert.Equal(t, want, got)
		assert.Equal(t, want.Hash(), got.Hash())
	}
}

// TestLayerErrors: each kind of bad layer is one error naming the file, the line and the key.
func TestLayerErrors(t *testing.T) {
	good := map[string]string{
		"models/m.yaml":     "model:\n  lstm:\n    hidden_size: 8\n",
		"strategies/s.yaml": "checkpoint:\n  strategy: fixed\n",
	}
	tests := []struct {
		name  string
		files map[string]string
		sets  []string
		want  string // the error, with <dir> for the tree's folder
	}{
		{"UnknownKeyInModel", map[string]string{"models/m.yaml": "model:\n  lstm:\n    hiden_size: 8\n"}, nil,
			"<dir>/models/m.yaml:3: model.lstm.hiden_size: unknown key; did you mean hidden_size?"},
		{"WrongTypeInStrategy", map[string]string{"strategies/s.yaml": "checkpoint:\n  every_steps: often\n"}, nil,
			`<dir>/strategies/s.yaml:2: checkpoint.every_steps: must be an integer (got "often")`},
		{"OutOfRangeInExperiment", map[string]string{"experiments/e.yaml": "layers: {model: m, strategy: s}\ninterrupts:\n  pattern: poisson\n  rate_per_hour: -1\n"}, nil,
			"<dir>/experiments/e.yaml:4: interrupts.rate_per_hour: must be a positive number of interrupts per hour, got -1"},
		{"UnknownStrategyName", map[string]string{"strategies/s.yaml": "checkpoint:\n  strategy: sometimes\n"}, nil,
			`<dir>/strategies/s.yaml:2: checkpoint.strategy: must be one of fixed, adaptive, milestone (got "sometimes")`},
		{"UnknownPattern", map[string]string{"experiments/e.yaml": "layers: {model: m}\ninterrupts: {pattern: often}\n"}, nil,
			`<dir>/experiments/e.yaml:2: interrupts.pattern: must be one of none, regular, poisson, bursty (got "often")`},
		{"BadDuration", map[string]string{"experiments/e.yaml": "interrupts:\n  pattern: regular\n  every: 10\n"}, nil,
			`<dir>/experiments/e.yaml:3: interrupts.every: must be a duration such as 90s, 15m or 2h30m (got "10")`},
		{"MissingModelLayer", map[string]string{"experiments/e.yaml": "layers:\n  model: nm\n"}, nil,
			`<dir>/experiments/e.yaml:2: layers.model: no models/nm.yaml in <dir> (did you mean m?)`},
		{"LayerRefNotAString", map[string]string{"experiments/e.yaml": "layers:\n  strategy: [s]\n"}, nil,
			`<dir>/experiments/e.yaml:2: layers.strategy: must name a file of strategies/ (got a list of 1)`},
		{"LayersNotAMapping", map[string]string{"experiments/e.yaml": "layers: m\n"}, nil,
			`<dir>/experiments/e.yaml:1: layers: must be a mapping (got "m")`},
		{"LayerNamesLayers", map[string]string{"models/m.yaml": "layers:\n  strategy: s\n", "experiments/e.yaml": "layers: {model: m}\n"}, nil,
			"<dir>/models/m.yaml:1: layers: only an experiment or a --config file names layers"},
		{"UnknownLayerKey", map[string]string{"experiments/e.yaml": "layers:\n  optimizer: adam\n"}, nil,
			"<dir>/experiments/e.yaml:2: layers.optimizer: unknown key; known keys: model, strategy"},
		{"InvalidYAMLInModel", map[string]string{"models/m.yaml": "model:\n\tlstm: {}\n"}, nil,
			"<dir>/models/m.yaml:2: invalid YAML: found character that cannot start any token"},
		{"CrossFieldAcrossLayers", map[string]string{"strategies/s.yaml": "checkpoint:\n  strategy: adaptive\n  min_seconds: 60\n", "experiments/e.yaml": "layers: {model: m, strategy: s}\ncheckpoint:\n  max_seconds: 30\n"}, nil,
			"<dir>/experiments/e.yaml:3: checkpoint.max_seconds: must be >= checkpoint.min_seconds (got 30 < 60)"},
		{"BadSet", nil, []string{"interrupts.pattern=poisson", "interrupts.no_notice_share=2"},
			"--set interrupts.no_notice_share=2: interrupts.no_notice_share: must be in [0, 1], got 2"},
		{"NegativeRestartDelay", nil, []string{"interrupts.restart_delay=-1s"},
			"--set interrupts.restart_delay=-1s: interrupts.restart_delay: must be >= 0 (got -1s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"experiments/e.yaml": "layers: {model: m, strategy: s}\n"}
			for k, v := range good {
				files[k] = v
			}
			for k, v := range tt.files {
				files[k] = v
			}
			tr, dir := tree(t, files)
			_, err := tr.Experiment("e", tt.sets)
			require.Error(t, err)
			var ce *configs.Error
			require.True(t, errors.As(err, &ce), "%T: %v", err, err)
			assert.Equal(t, strings.ReplaceAll(tt.want, "<dir>", dir), err.Error())
		})
	}
}

func TestExperimentLookup(t *testing.T) {
	tr := configs.Builtin()
	_, err := tr.Experiment("lstm-fixed-poison", nil)
	assert.EqualError(t, err, "no experiments/lstm-fixed-poison.yaml in configs (did you mean lstm-fixed-poisson?)")
	_, err = tr.Experiment("../models/lstm-solar", nil)
	assert.ErrorContains(t, err, `bad experiment name "../models/lstm-solar"`)

	got, err := tr.Match("lstm-*-poisson")
	require.NoError(t, err)
	assert.Equal(t, []string{"lstm-adaptive-poisson", "lstm-fixed-poisson", "lstm-milestone-poisson"}, got)
	got, err = tr.Match("lstm-ondemand")
	require.NoError(t, err)
	assert.Equal(t, []string{"lstm-ondemand"}, got)
	_, err = tr.Match("gpt-*")
	assert.ErrorContains(t, err, `configs/experiments: no experiment matches "gpt-*"`)
	_, err = tr.Match("[")
	assert.ErrorContains(t, err, `bad pattern "["`)
}

// TestFileWithLayers: a standalone --config file may sit on layers of the tree too.
func TestFileWithLayers(t *testing.T) {
	path := testutil.WriteTemp(t, "mine.yaml", "layers: {model: lstm-solar, strategy: adaptive}\nname: mine\ntrain: {epochs: 2}\n")
	c, err := configs.Load(path, nil)
	require.NoError(t, err)
	assert.Equal(t, "mine", c.Name)
	assert.Equal(t, 2, c.Train.Epochs)
	assert.Equal(t, "adaptive", c.Checkpoint.Strategy)
	assert.Equal(t, 360.0, c.Interrupts.TimeScale) // from the model layer
}

func TestDiff(t *testing.T) {
	a := configs.Default()
	b := a
	assert.Empty(t, configs.Diff(a, b))
	b.Optimizer.LR = 0.01
	b.Device = "cpu"
	b.Checkpoint.EverySeconds = 5
	b.Optimizer.Betas = [2]float64{0.9, 0.98}
	b.Interrupts.Grace = time.Minute
	b.Distributed.NProcPerNode = 2
	got := configs.Diff(a, b)
	var breaking, other []string
	for _, c := range got {
		if c.Breaks {
			breaking = append(breaking, c.String())
		} else {
			other = append(other, c.String())
		}
	}
	assert.Equal(t, []string{"optimizer.lr: 0.001 -> 0.01", "optimizer.betas: [0.9, 0.999] -> [0.9, 0.98]"}, breaking)
	assert.Equal(t, []string{"device: auto -> cpu", "checkpoint.every_seconds: 60 -> 5", "interrupts.grace: 30s -> 1m0s",
		"distributed.nproc_per_node: 1 -> 2"}, other, "a resume may change the number of processes")
}

func TestTrainingHash(t *testing.T) {
	a := configs.Default()
	b := a
	b.Device, b.Threads, b.Checkpoint.Strategy, b.Interrupts.Pattern, b.Name, b.RunDir = "cpu", 2, "adaptive", "poisson", "x", "y"
	b.Distributed = configs.DistributedConfig{NProcPerNode: 4, Backend: "gloo", Timeout: time.Minute, BucketMB: 1,
		NNodes: 2, NodeRank: 1, MasterAddr: "10.0.0.1", MasterPort: 29400}
	assert.Equal(t, a.TrainingHash(), b.TrainingHash(), "where and how it runs is not what it trains")
	assert.NotEqual(t, a.Hash(), b.Hash())
	b.Train.BatchSize++
	assert.NotEqual(t, a.TrainingHash(), b.TrainingHash())
}

// TestTrainingHashData: the data file's digest is part of what is trained, its path is not.
func TestTrainingHashData(t *testing.T) {
	a := configs.Default()
	a.Data.Source, a.Data.Path, a.Data.Digest = "csv", "/data/a.csv", strings.Repeat("a", 64)
	moved := a
	moved.Data.Path = "/elsewhere/a.csv"
	assert.Equal(t, a.TrainingHash(), moved.TrainingHash(), "a moved file trains the same")
	other := a
	other.Data.Digest = strings.Repeat("b", 64)
	assert.NotEqual(t, a.TrainingHash(), other.TrainingHash(), "another file trains something else")
	changes := configs.Diff(a, other)
	require.Len(t, changes, 1)
	assert.Equal(t, "data.digest", changes[0].Key)
	assert.True(t, changes[0].Breaks)
	// A config saved before digests were recorded has none: it names no change.
	before := a
	before.Data.Digest = ""
	assert.Empty(t, configs.Diff(before, a))
}
