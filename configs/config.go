// Package configs defines a training job's configuration and loads it from YAML.
//
// Guarantees:
//
//   - Kinds: model.kind (lstm or resnet; lstm when no layer sets it) selects the keys that
//     exist. The keys of one model kind live in subsections named for it: model.lstm, data.lstm;
//     model.resnet, data.resnet, train.resnet. model.kind is read from the merged layers first,
//     and only its subsections are accepted, decoded, validated, shown, saved and hashed (the
//     other kind's are nil in Config and absent from its YAML). A subsection of another kind is an
//     error at its line ("model.resnet: only for model.kind resnet (model.kind is lstm)"), and so
//     is a kind key in its old flat place ("model.depth: moved to model.resnet.depth").
//   - Defaults: every field has a default (DefaultFor the kind: the common keys are the same for
//     every kind). A document sets only the keys it names; everything else keeps its default.
//     The Config returned by Load has concrete values for every field of its kind and has
//     passed Validate.
//   - Strict: an unknown key (at any depth), a duplicate key, a value of the wrong type
//     (3.5 for an integer, "ten" for a number, a list for a scalar), a null value, an
//     out-of-range or cross-field-inconsistent value, invalid YAML, a top level that is not
//     a mapping, an empty document, several documents in one file and YAML aliases are all
//     errors. Nothing is ignored or silently coerced. Every such error is an *Error naming
//     the source (file name or the --set flag), the 1-based line where one is known, and
//     the dotted key.
//   - Precedence: Default() < model layer < strategy layer < the experiment or file < --set
//     overrides, in the order given; a later layer replaces scalars and lists and deep-merges
//     mappings. The layers come from a Tree: the built-in one (Builtin, the configs/ folder of
//     the source, embedded) or a folder (DirTree); an experiment or a file names them in its
//     layers section, and only those may.
//   - Paths: a relative data.path is resolved against the directory of the standalone file that
//     set it; one set in a layer of a tree or with --set stays relative to the current
//     directory, as does run_dir. run_dir defaults to runs/<name> when no layer sets it.
//   - Hash: Config.Hash is the SHA-256 of Config.YAML, the canonical form (all fields of the
//     config's kind, in struct order, resolved paths, start in UTC RFC 3339): equal configs hash
//     alike however their sources were written, and loading the YAML() output from the current
//     directory yields the same Config and hash. Config.TrainingHash covers only the keys whose
//     change alters what is trained (see Change.Breaks); neither moves when a key or a default
//     of another kind changes.
//   - Interrupts: the interrupts section is a preemption.Config, which owns its rules
//     (preemption.Config.Validate); its errors name the key under interrupts.
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
	"path/filepath"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"spottrain/preemption"
)

// Config is one training job, fully resolved. The kind subsections (Model.LSTM, Data.ResNet, ...)
// are pointers: a copy of a Config shares them with the original.
type Config struct {
	Name          string            `yaml:"name"`
	Layers        LayersConfig      `yaml:"layers"`        // the model and strategy layers beneath this config
	Seed          uint64            `yaml:"seed"`          // model init, data order, dropout
	Device        string            `yaml:"device"`        // auto, cpu, cuda or cuda:N
	Threads       int               `yaml:"threads"`       // intra-op threads; 0 = one per CPU core
	Deterministic bool              `yaml:"deterministic"` // deterministic kernels
	RunDir        string            `yaml:"run_dir"`       // relative to the current directory
	Model         ModelConfig       `yaml:"model"`
	Data          DataConfig        `yaml:"data"`
	Train         TrainConfig       `yaml:"train"`
	Optimizer     OptimizerConfig   `yaml:"optimizer"`
	Schedule      ScheduleConfig    `yaml:"schedule"`
	Checkpoint    CheckpointConfig  `yaml:"checkpoint"`
	Interrupts    preemption.Config `yaml:"interrupts"` // the simulated spot market of spottrain run; the trainer ignores it
	Preemption    PreemptionConfig  `yaml:"preemption"`
	Distributed   DistributedConfig `yaml:"distributed"` // several worker processes; a resume may change it
	Cost          CostConfig        `yaml:"cost"`        // GPU prices for analysis
}

// PreemptionConfig says where a trainer hears of its own preemption besides SIGTERM and SIGINT.
type PreemptionConfig struct {
	// Notice is auto (probe GCP's and AWS's metadata servers in the background and watch the one
	// that answers), gcp, aws or none.
	Notice string `yaml:"notice"`
}

// DistributedConfig is how a job trains data-parallel in several processes (see package
// distributed). None of its keys changes what is trained: a resume may change the number of
// processes.
type DistributedConfig struct {
	// NProcPerNode is the number of worker processes on this machine (torchrun's --nproc-per-node);
	// 1: one process and no group, unless a launcher (torchrun, a PyTorchJob) set WORLD_SIZE.
	NProcPerNode int `yaml:"nproc_per_node"`
	// Backend is auto (nccl on CUDA devices, gloo on the CPU), gloo or nccl.
	Backend string `yaml:"backend"`
	// Timeout bounds the rendezvous and every collective: a lost or frozen peer ends the group
	// within it.
	Timeout time.Duration `yaml:"timeout"`
	// BucketMB is the size in MB of the buckets in which gradients are reduced.
	BucketMB float64 `yaml:"bucket_mb"`
	// NNodes is the number of machines of the job (torchrun's --nnodes), each with a launcher of
	// NProcPerNode workers; NodeRank is this machine's place among them (torchrun's --node-rank).
	NNodes   int `yaml:"nnodes"`
	NodeRank int `yaml:"node_rank"`
	// MasterAddr and MasterPort are where node 0's launcher hosts the rendezvous store when
	// NNodes > 1 (torchrun's --master-addr, --master-port); MasterAddr "" is 127.0.0.1, allowed
	// only when NNodes is 1 (one machine, whose store listens on a free port).
	MasterAddr string `yaml:"master_addr"`
	MasterPort int    `yaml:"master_port"`
	// MinNodes, above 0, makes a group of several machines elastic: when a machine is lost, the
	// others go on among themselves, as long as MinNodes machines are left (from the newest
	// committed checkpoint, without a restart), and a machine started again in its place joins
	// at the next checkpoint. 0: a lost machine stops the group (exit 75), as torchrun's static
	// rendezvous does.
	MinNodes int `yaml:"min_nodes"`
}

// LayersConfig names the layers of a config tree that an experiment (or a --config file) sits
// on: models/<Model>.yaml, then strategies/<Strategy>.yaml. Empty: no such layer.
type LayersConfig struct {
	Model    string `yaml:"model"`
	Strategy string `yaml:"strategy"`
}

// The model kinds, the values of model.kind. Each kind has subsections of its own, named for it,
// in the sections model, data and train: only the active kind's exist.
const (
	KindLSTM   = "lstm"
	KindResNet = "resnet"
)

// ModelConfig selects and sizes the network. Of LSTM and ResNet, the one Kind names is set and
// the other is nil.
type ModelConfig struct {
	Kind   string       `yaml:"kind"` // lstm or resnet
	LSTM   *LSTMModel   `yaml:"lstm,omitempty"`
	ResNet *ResNetModel `yaml:"resnet,omitempty"`
}

// LSTMModel sizes the LSTM forecaster and says what it reads, predicts and minimises
// (model.lstm).
type LSTMModel struct {
	HiddenSize   int     `yaml:"hidden_size"`
	NumLayers    int     `yaml:"num_layers"`
	Dropout      float64 `yaml:"dropout"`
	Target       string  `yaml:"target"`        // clearsky_index, cliper_residual or power
	FutureInputs bool    `yaml:"future_inputs"` // the target hours' known inputs follow the lookback
	Loss         string  `yaml:"loss"`          // mse, mae or huber, of power as a fraction of capacity
	HuberDelta   float64 `yaml:"huber_delta"`   // huber: quadratic below this error (fraction of capacity)
}

// ResNetModel sizes the ResNet (model.resnet).
type ResNetModel struct {
	Depth            int     `yaml:"depth"`              // 18, 34, 50 or 101
	Width            float64 `yaml:"width"`              // channel multiplier; 1 = the standard network
	Stem             string  `yaml:"stem"`               // cifar (3x3, no max-pool) or imagenet
	ZeroInitResidual bool    `yaml:"zero_init_residual"` // zero the last BatchNorm of each block
}

// DataConfig names the data set. Of LSTM and ResNet, the one model.kind names is set and the
// other is nil.
type DataConfig struct {
	Source string `yaml:"source"` // synthetic, csv or pvgis (lstm); cifar100, cifar10 or synthetic-cifar (resnet)
	Path   string `yaml:"path"`   // csv, pvgis: the file; cifar*: the .tar.gz or its folder; resolved (see package doc)
	// Digest is the hex SHA-256 of what Path names (a folder: of its files' names and contents),
	// as the trainer found it; empty: not recorded (synthetic data, whose settings are keys). It is
	// part of TrainingHash, unlike Path: a moved file trains the same, another file does not. A
	// run dir's config.yaml records it; set in a config, the trainer refuses data that differs.
	Digest string      `yaml:"digest,omitempty"`
	LSTM   *LSTMData   `yaml:"lstm,omitempty"`
	ResNet *ResNetData `yaml:"resnet,omitempty"`
}

// LSTMData describes the PV power series and how it is windowed and split (data.lstm).
type LSTMData struct {
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
}

// ResNetData describes the images and how they are prepared (data.resnet).
type ResNetData struct {
	Augment          bool `yaml:"augment"`           // random crop (4-pixel padding) and horizontal flip
	Workers          int  `yaml:"workers"`           // goroutines preparing batches; 0 = one per CPU core
	SyntheticSamples int  `yaml:"synthetic_samples"` // synthetic-cifar: training images (test: a fifth)
	Classes          int  `yaml:"classes"`           // synthetic-cifar: classes
}

// TrainConfig drives the loop. ResNet is set when model.kind is resnet, else nil.
type TrainConfig struct {
	Epochs         int          `yaml:"epochs"`
	BatchSize      int          `yaml:"batch_size"`
	MaxSteps       int          `yaml:"max_steps"` // optimizer steps overall; 0 = no limit
	LogEvery       int          `yaml:"log_every"` // steps between log lines
	GradClip       float64      `yaml:"grad_clip"` // max global L2 norm; 0 = off
	EvalBatchSize  int          `yaml:"eval_batch_size"`
	Precision      string       `yaml:"precision"`       // fp32, or bf16 (autocast, CUDA only)
	CudnnBenchmark bool         `yaml:"cudnn_benchmark"` // let cuDNN pick the fastest algorithms
	ResNet         *ResNetTrain `yaml:"resnet,omitempty"`
}

// ResNetTrain holds the training keys of the ResNet (train.resnet).
type ResNetTrain struct {
	LabelSmoothing float64 `yaml:"label_smoothing"` // cross-entropy, [0, 1)
	ChannelsLast   bool    `yaml:"channels_last"`   // NHWC memory format
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

// CheckpointConfig picks the strategy that decides when periodic checkpoints are taken (besides
// the emergency checkpoint on a preemption notice and the final one) and how many are kept.
type CheckpointConfig struct {
	Strategy     string  `yaml:"strategy"`      // fixed, adaptive or milestone
	EverySteps   int     `yaml:"every_steps"`   // fixed: every N optimizer steps; 0 = off
	EverySeconds float64 `yaml:"every_seconds"` // fixed: every T seconds of training; 0 = off
	// adaptive: Young/Daly's interval from the measured checkpoint cost and time between
	// interruptions, within [MinSeconds, MaxSeconds].
	MinSeconds       float64 `yaml:"min_seconds"`
	MaxSeconds       float64 `yaml:"max_seconds"`
	PriorMTBISeconds float64 `yaml:"prior_mtbi_seconds"` // assumed before an interruption is seen
	EMA              float64 `yaml:"ema"`                // weight of a new measurement, (0, 1]
	// milestone: a checkpoint on each improvement of Metric; the best one is kept besides the
	// newest Keep. Empty Metric and Mode: the workload's own (rmse_kw, min; top1, max).
	Metric string `yaml:"metric"`
	Mode   string `yaml:"mode"` // min or max
	Keep   int    `yaml:"keep"` // newest checkpoints kept, >= 1
	// Remote is where checkpoints are mirrored in object storage: gs://BUCKET[/PATH],
	// s3://BUCKET[/PATH][?region=...] or file:///DIR; empty: nowhere. The run's copy is under
	// RemoteURL. Each commit is uploaded in the background, and a trainer that finds no newer
	// checkpoint in its run dir (a fresh VM) resumes from the newest valid one there.
	Remote string `yaml:"remote"`
	// RemoteGrace bounds the wait for uploads at exit: on a notice, the trainer exits at most
	// this long after it, abandoning an unfinished upload (the remote keeps the checkpoint
	// before); on other errors, this long after the error. A finished run waits for its final
	// checkpoint's upload.
	RemoteGrace time.Duration `yaml:"remote_grace"`
}

// RemoteURL is the URL of the run's copy in object storage: Checkpoint.Remote with the run dir
// appended as a relative path (runs/x, or /data/runs/x without its leading slash), so that every
// run dir has its own; "" when Checkpoint.Remote is empty.
func (c Config) RemoteURL() string {
	if c.Checkpoint.Remote == "" {
		return ""
	}
	base, query, _ := strings.Cut(c.Checkpoint.Remote, "?")
	u := strings.TrimRight(base, "/") + "/" + strings.TrimLeft(filepath.ToSlash(filepath.Clean(c.RunDir)), "/")
	if query != "" {
		u += "?" + query
	}
	return u
}

// ScheduleConfig shapes the learning rate over optimizer steps.
type ScheduleConfig struct {
	Name        string  `yaml:"name"`         // constant, step or cosine
	WarmupSteps int     `yaml:"warmup_steps"` // linear from 0 to lr; all schedules
	StepSize    int     `yaml:"step_size"`    // step: lr *= gamma every step_size steps
	Gamma       float64 `yaml:"gamma"`        // step
	MinLR       float64 `yaml:"min_lr"`       // cosine floor
}

// Default returns the configuration used for every key no layer sets: DefaultFor(KindLSTM).
func Default() Config { return DefaultFor(KindLSTM) }

// DefaultFor returns the defaults of a config whose model.kind is kind: the common keys, and the
// subsections of kind at their defaults (those of other kinds nil). The common keys do not depend
// on the kind. An unknown kind gets no subsection (and fails Validate).
func DefaultFor(kind string) Config {
	c := Config{
		Name:    "lstm-solar",
		Seed:    42,
		Device:  "auto",
		Threads: 0,
		RunDir:  "runs/lstm-solar",
		Model:   ModelConfig{Kind: kind},
		Data:    DataConfig{Source: "synthetic"},
		Train: TrainConfig{Epochs: 10, BatchSize: 64, LogEvery: 50, GradClip: 1.0, EvalBatchSize: 512,
			Precision: "fp32"},
		Optimizer: OptimizerConfig{
			Name:     "adam",
			LR:       0.001,
			Betas:    [2]float64{0.9, 0.999},
			Eps:      1e-8,
			Momentum: 0.9,
		},
		Schedule: ScheduleConfig{Name: "cosine", WarmupSteps: 100, StepSize: 1000, Gamma: 0.5},
		Checkpoint: CheckpointConfig{Strategy: "fixed", EverySteps: 0, EverySeconds: 60,
			MinSeconds: 10, MaxSeconds: 1800, PriorMTBISeconds: 3600, EMA: 0.3, Keep: 3, RemoteGrace: 25 * time.Second},
		Interrupts: preemption.Config{
			Pattern: preemption.PatternNone, Seed: 1, Every: time.Hour, RatePerHour: 1,
			QuietRatePerHour: 0.2, StormRatePerHour: 6, QuietMean: 4 * time.Hour, StormMean: 30 * time.Minute,
			NoNoticeShare: 0.25, Grace: 30 * time.Second, RestartDelay: 2 * time.Minute, TimeScale: 1, Machines: 1,
		},
		Preemption: PreemptionConfig{Notice: "auto"},
		Distributed: DistributedConfig{NProcPerNode: 1, Backend: "auto", Timeout: 30 * time.Second, BucketMB: 25,
			NNodes: 1, MasterPort: 29500},
		Cost: CostConfig{GPU: "nvidia-l4"},
	}
	switch kind {
	case KindLSTM:
		m, d := lstmModelDefaults, lstmDataDefaults
		c.Model.LSTM, c.Data.LSTM = &m, &d
	case KindResNet:
		m, d, t := resnetModelDefaults, resnetDataDefaults, resnetTrainDefaults
		c.Model.ResNet, c.Data.ResNet, c.Train.ResNet = &m, &d, &t
	}
	return c
}

// The defaults of the kind subsections; DefaultFor hands out copies.
var (
	lstmModelDefaults = LSTMModel{HiddenSize: 64, NumLayers: 2, Dropout: 0.1, Target: "clearsky_index",
		FutureInputs: false, Loss: "mse", HuberDelta: 0.05}
	lstmDataDefaults = LSTMData{
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
	}
	resnetModelDefaults = ResNetModel{Depth: 50, Width: 1, Stem: "cifar"}
	resnetDataDefaults  = ResNetData{Augment: true, SyntheticSamples: 5000, Classes: 10}
	resnetTrainDefaults = ResNetTrain{}
)

// YAML returns the canonical form of c: every field, in struct order, two-space indent.
// Paths appear resolved, so reload it with LoadBytes and an empty baseDir (or Load from
// the current directory) to get c back.
func (c Config) YAML() ([]byte, error) { return encodeYAML(c) }

// encodeYAML renders v (a value or a *yaml.Node) as YAML with a two-space indent.
func encodeYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
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
