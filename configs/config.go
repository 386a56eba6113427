// Package configs defines a training job's configuration and loads it from YAML.
//
// Guarantees:
//
//   - Defaults: every field has a default (Default). A document sets only the keys it names;
//     everything else keeps its default. The Config returned by Load has concrete values
//     for every field and has passed Validate.
//   - Strict: an unknown key (at any depth), a duplicate key, a value of the wrong type
//     (3.5 for an integer, "ten" for a number, a list for a scalar), a null value, an
//     out-of-range or cross-field-inconsistent value, invalid YAML, a top level that is not
//     a mapping, an empty document, several documents in one file and YAML aliases are all
//     errors. Nothing is ignored or silently coerced. Every such error is an *Error naming
//     the source (file name or the --set flag), the 1-based line where one is known, and
//     the dotted key.
//   - Precedence: Default() < the file < --set overrides, in the order given; a later layer
//     replaces scalars and lists and deep-merges mappings.
//   - Paths: a relative data.path is resolved against the directory of the file that set
//     it; one given with --set stays relative to the current directory, as does run_dir.
//     run_dir defaults to runs/<name> when no layer sets it.
//   - Hash: Config.Hash is the SHA-256 of Config.YAML, the canonical form (all fields, in
//     struct order, resolved paths, start in UTC RFC 3339): equal configs hash alike however
//     their sources were written, and loading the YAML() output from the current directory
//     yields the same Config and hash.
//
// Layers are merged as yaml.Node trees that remember, for each node, the source it came
// from, so an error about a merged value can name the file and line that set it. This
// replaces the pointer-field layer structs of DESIGN.md habit 9: the merge is generic, and
// a struct would lose the line numbers.
package configs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is one training job, fully resolved.
type Config struct {
	Name          string           `yaml:"name"`
	Seed          uint64           `yaml:"seed"`          // model init, data order, dropout
	Device        string           `yaml:"device"`        // auto, cpu, cuda or cuda:N
	Threads       int              `yaml:"threads"`       // intra-op threads; 0 = one per CPU core
	Deterministic bool             `yaml:"deterministic"` // deterministic kernels
	RunDir        string           `yaml:"run_dir"`       // relative to the current directory
	Model         ModelConfig      `yaml:"model"`
	Data          DataConfig       `yaml:"data"`
	Train         TrainConfig      `yaml:"train"`
	Optimizer     OptimizerConfig  `yaml:"optimizer"`
	Schedule      ScheduleConfig   `yaml:"schedule"`
	Checkpoint    CheckpointConfig `yaml:"checkpoint"`
}

// ModelConfig selects and sizes the network.
type ModelConfig struct {
	Kind       string  `yaml:"kind"` // lstm or resnet
	HiddenSize int     `yaml:"hidden_size"`
	NumLayers  int     `yaml:"num_layers"`
	Dropout    float64 `yaml:"dropout"`
	// resnet
	Depth            int     `yaml:"depth"`              // 18, 34, 50 or 101
	Width            float64 `yaml:"width"`              // channel multiplier; 1 = the standard network
	Stem             string  `yaml:"stem"`               // cifar (3x3, no max-pool) or imagenet
	ZeroInitResidual bool    `yaml:"zero_init_residual"` // zero the last BatchNorm of each block
}

// DataConfig describes the PV power series and how it is windowed and split.
type DataConfig struct {
	Source           string    `yaml:"source"`           // synthetic, csv or pvgis (solar); cifar100, cifar10 or synthetic-cifar (images)
	Path             string    `yaml:"path"`             // csv, pvgis: the file; cifar*: the .tar.gz or its folder; resolved (see package doc)
	TimestampColumn  string    `yaml:"timestamp_column"` // csv
	PowerColumn      string    `yaml:"power_column"`     // csv
	PowerUnit        string    `yaml:"power_unit"`       // csv: kW or W
	Latitude         float64   `yaml:"latitude"`
	Longitude        float64   `yaml:"longitude"`
	CapacityKW       float64   `yaml:"capacity_kw"` // files: 0 = the maximum observed
	Days             int       `yaml:"days"`        // synthetic
	Start            time.Time `yaml:"start"`       // synthetic; UTC
	CloudPersistence float64   `yaml:"cloud_persistence"`
	Noise            float64   `yaml:"noise"`
	MaxGapFillHours  int       `yaml:"max_gap_fill_hours"`
	LookbackHours    int       `yaml:"lookback_hours"`
	HorizonHours     int       `yaml:"horizon_hours"`
	TrainFrac        float64   `yaml:"train_frac"`
	ValFrac          float64   `yaml:"val_frac"`
	// images
	Augment          bool `yaml:"augment"`           // random crop (4-pixel padding) and horizontal flip
	Workers          int  `yaml:"workers"`           // goroutines preparing batches; 0 = one per CPU core
	SyntheticSamples int  `yaml:"synthetic_samples"` // synthetic-cifar: training images (test: a fifth)
	Classes          int  `yaml:"classes"`           // synthetic-cifar: classes
}

// TrainConfig drives the loop.
type TrainConfig struct {
	Epochs        int     `yaml:"epochs"`
	BatchSize     int     `yaml:"batch_size"`
	MaxSteps      int     `yaml:"max_steps"` // optimizer steps overall; 0 = no limit
	LogEvery      int     `yaml:"log_every"` // steps between log lines
	GradClip      float64 `yaml:"grad_clip"` // max global L2 norm; 0 = off
	EvalBatchSize int     `yaml:"eval_batch_size"`
	// images
	LabelSmoothing float64 `yaml:"label_smoothing"` // cross-entropy, [0, 1)
	Precision      string  `yaml:"precision"`       // fp32, or bf16 (autocast, CUDA only)
	ChannelsLast   bool    `yaml:"channels_last"`   // NHWC memory format
	CudnnBenchmark bool    `yaml:"cudnn_benchmark"` // let cuDNN pick the fastest algorithms
}

// OptimizerConfig selects the optimizer; fields that do not apply to it are ignored.
type OptimizerConfig struct {
	Name        string     `yaml:"name"` // adam, adamw or sgd
	LR          float64    `yaml:"lr"`
	WeightDecay float64    `yaml:"weight_decay"`
	Betas       [2]float64 `yaml:"betas,flow"` // adam, adamw
	Eps         float64    `yaml:"eps"`        // adam, adamw
	Momentum    float64    `yaml:"momentum"`   // sgd
	Nesterov    bool       `yaml:"nesterov"`   // sgd
}

// CheckpointConfig sets when periodic checkpoints are taken (besides the emergency checkpoint on
// SIGTERM / SIGINT and the final one) and how many are kept.
type CheckpointConfig struct {
	EverySteps   int     `yaml:"every_steps"`   // every N optimizer steps; 0 = off
	EverySeconds float64 `yaml:"every_seconds"` // every T seconds of training; 0 = off
	Keep         int     `yaml:"keep"`          // newest checkpoints kept, >= 1
}

// ScheduleConfig shapes the learning rate over optimizer steps.
type ScheduleConfig struct {
	Name        string  `yaml:"name"`         // constant, step or cosine
	WarmupSteps int     `yaml:"warmup_steps"` // linear from 0 to lr; all schedules
	StepSize    int     `yaml:"step_size"`    // step: lr *= gamma every step_size steps
	Gamma       float64 `yaml:"gamma"`        // step
	MinLR       float64 `yaml:"min_lr"`       // cosine floor
}

// Default returns the configuration used for every key no layer sets.
func Default() Config {
	return Config{
		Name:    "lstm-solar",
		Seed:    42,
		Device:  "auto",
		Threads: 0,
		RunDir:  "runs/lstm-solar",
		Model: ModelConfig{Kind: "lstm", HiddenSize: 64, NumLayers: 2, Dropout: 0.1,
			Depth: 50, Width: 1, Stem: "cifar"},
		Data: DataConfig{
			Source:           "synthetic",
			TimestampColumn:  "timestamp",
			PowerColumn:      "power_kw",
			PowerUnit:        "kW",
			Latitude:         48.1,
			Longitude:        11.6,
			CapacityKW:       5.0,
			Days:             730,
			Start:            time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC),
			CloudPersistence: 0.9,
			Noise:            0.02,
			MaxGapFillHours:  3,
			LookbackHours:    48,
			HorizonHours:     24,
			TrainFrac:        0.7,
			ValFrac:          0.15,
			Augment:          true,
			SyntheticSamples: 5000,
			Classes:          10,
		},
		Train: TrainConfig{Epochs: 10, BatchSize: 64, LogEvery: 50, GradClip: 1.0, EvalBatchSize: 512,
			Precision: "fp32"},
		Optimizer: OptimizerConfig{
			Name:     "adam",
			LR:       0.001,
			Betas:    [2]float64{0.9, 0.999},
			Eps:      1e-8,
			Momentum: 0.9,
		},
		Schedule:   ScheduleConfig{Name: "cosine", WarmupSteps: 100, StepSize: 1000, Gamma: 0.5},
		Checkpoint: CheckpointConfig{EverySteps: 0, EverySeconds: 60, Keep: 3},
	}
}

// YAML returns the canonical form of c: every field, in struct order, two-space indent.
// Paths appear resolved, so reload it with LoadBytes and an empty baseDir (or Load from
// the current directory) to get c back.
func (c Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Hash returns the hex SHA-256 of c.YAML().
func (c Config) Hash() string {
	doc, err := c.YAML()
	if err != nil {
		panic("configs: encode config: " + err.Error()) // a Config of plain fields always encodes
	}
	sum := sha256.Sum256(doc)
	return hex.EncodeToString(sum[:])
}
