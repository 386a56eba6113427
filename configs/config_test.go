package configs_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/configs"
	"spottrain/internal/testutil"
)

func TestDefaultValidates(t *testing.T) {
	require.NoError(t, configs.Default().Validate())
}

func TestLoadKeepsDefaultsForUnnamedKeys(t *testing.T) {
	path := testutil.WriteTemp(t, "cfg.yaml", `
name: small
model:
  lstm:
    hidden_size: 32
data:
  lstm:
    start: 2024-06-01T12:00:00+02:00
optimizer:
  betas: [0.8, 0.9]
`)
	got, err := configs.Load(path, nil)
	require.NoError(t, err)

	want := configs.Default()
	want.Name = "small"
	want.RunDir = "runs/small" // follows name when not set
	want.Model.LSTM.HiddenSize = 32
	want.Data.LSTM.Start = time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC)
	want.Optimizer.Betas = [2]float64{0.8, 0.9}
	assert.Equal(t, want, got)
}

func TestSetOverrides(t *testing.T) {
	path := testutil.WriteTemp(t, "cfg.yaml", "run_dir: out\ntrain:\n  epochs: 3\n  batch_size: 16\n")
	tests := []struct {
		name string
		sets []string
		want func(*configs.Config)
	}{
		{"None", nil, func(c *configs.Config) {}},
		{"BeatsFile", []string{"train.epochs=7"}, func(c *configs.Config) { c.Train.Epochs = 7 }},
		{"LaterSetWins", []string{"train.epochs=7", "train.epochs=8"}, func(c *configs.Config) { c.Train.Epochs = 8 }},
		{"FlowList", []string{"optimizer.betas=[0.9,0.98]"}, func(c *configs.Config) { c.Optimizer.Betas = [2]float64{0.9, 0.98} }},
		{"PlainString", []string{"name=foo"}, func(c *configs.Config) { c.Name = "foo" }},
		{"NumberAsString", []string{"data.lstm.power_column=2"}, func(c *configs.Config) { c.Data.LSTM.PowerColumn = "2" }},
		{"EmptyString", []string{"data.lstm.timestamp_column=", "data.source=synthetic"}, func(c *configs.Config) { c.Data.LSTM.TimestampColumn = "" }},
		{"Bool", []string{"deterministic=true"}, func(c *configs.Config) { c.Deterministic = true }},
		{"FlowMapping", []string{"model.lstm={num_layers: 3, dropout: 0}"}, func(c *configs.Config) {
			c.Model.LSTM.NumLayers, c.Model.LSTM.Dropout = 3, 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := configs.Load(path, tt.sets)
			require.NoError(t, err)
			want := configs.Default()
			want.RunDir = "out"
			want.Train.Epochs, want.Train.BatchSize = 3, 16
			tt.want(&want)
			assert.Equal(t, want, got)
		})
	}
}

func TestRunDir(t *testing.T) {
	tests := []struct {
		name, doc string
		sets      []string
		want      string
	}{
		{"Default", "seed: 1\n", nil, "runs/lstm-solar"},
		{"FollowsName", "name: exp1\n", nil, "runs/exp1"},
		{"FollowsSetName", "seed: 1\n", []string{"name=exp2"}, "runs/exp2"},
		{"Explicit", "name: exp1\nrun_dir: /tmp/x\n", nil, "/tmp/x"},
		{"ExplicitRelativeStaysRelative", "run_dir: out/r\n", nil, "out/r"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := configs.LoadBytes("cfg.yaml", []byte(tt.doc), "/somewhere", tt.sets)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.RunDir)
		})
	}
}

func TestRemoteURL(t *testing.T) {
	for _, tc := range []struct{ remote, runDir, want string }{
		{"", "runs/x", ""},
		{"gs://b/spottrain", "runs/x", "gs://b/spottrain/runs/x"},
		{"gs://b/spottrain/", "./runs/x/", "gs://b/spottrain/runs/x"},
		{"gs://b", "/data/runs/x", "gs://b/data/runs/x"},
		{"s3://b/p?region=eu-west-1", "runs/x/rep-0", "s3://b/p/runs/x/rep-0?region=eu-west-1"},
		{"file:///mnt/ckpt", "runs/x", "file:///mnt/ckpt/runs/x"},
	} {
		c := configs.Default()
		c.Checkpoint.Remote, c.RunDir = tc.remote, tc.runDir
		assert.Equal(t, tc.want, c.RemoteURL(), "%s + %s", tc.remote, tc.runDir)
	}
}

func TestDataPath(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(dir, "abs.csv")
	tests := []struct {
		name, path string
		sets       []string
		want       string
	}{
		{"RelativeToConfigFile", "pv/site.csv", nil, filepath.Join(dir, "conf", "pv", "site.csv")},
		{"ParentOfConfigDir", "../site.csv", nil, filepath.Join(dir, "site.csv")},
		{"Absolute", abs, nil, abs},
		{"SetIsRelativeToCurrentDir", "pv/site.csv", []string{"data.path=other.csv"}, "other.csv"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := testutil.WriteFile(t, filepath.Join(dir, "conf", "cfg.yaml"), "data:\n  source: csv\n  path: "+tt.path+"\n  lstm:\n    capacity_kw: 0\n")
			c, err := configs.Load(path, tt.sets)
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Data.Path)
		})
	}
}

// errorCase is a document (with --set flags) that LoadBytes refuses with one *Error.
type errorCase struct {
	name string
	doc  string
	sets []string
	file string // "" means "cfg.yaml"
	line int
	key  string
	msg  string // the exact Msg
}

// errorCases are the cases of TestErrors.
var errorCases = []errorCase{
	// document level
	{name: "Empty", doc: "", msg: "no settings (the document is empty)"},
	{name: "OnlyComments", doc: "# nothing\n", msg: "no settings (the document is empty)"},
	{name: "Syntax", doc: "train:\n  epochs: [1,\n", line: 2, msg: "invalid YAML: did not find expected node content"},
	{name: "Tab", doc: "train:\n\tepochs: 1\n", line: 2, msg: "invalid YAML: found character that cannot start any token"},
	{name: "TopLevelList", doc: "- name\n- seed\n", line: 1, msg: "top level must be a mapping of settings (got a list of 2)"},
	{name: "TopLevelScalar", doc: "\nlstm\n", line: 2, msg: `top level must be a mapping of settings (got "lstm")`},
	{name: "TwoDocuments", doc: "name: a\n---\nname: b\n", line: 2, msg: "more than one YAML document"},
	{name: "DuplicateKey", doc: "train:\n  epochs: 1\n  epochs: 2\n", line: 3, key: "train.epochs", msg: "duplicate key (first on line 2)"},
	{name: "Alias", doc: "model:\n  lstm:\n    hidden_size: &h 8\n    num_layers: *h\n", line: 4, key: "model.lstm.num_layers", msg: "YAML aliases are not supported"},

	// unknown keys
	{name: "UnknownTop", doc: "seed: 1\nnmae: x\n", line: 2, key: "nmae", msg: "unknown key; did you mean name?"},
	{name: "UnknownNested", doc: "model:\n  lstm:\n    hiden_size: 3\n", line: 3, key: "model.lstm.hiden_size", msg: "unknown key; did you mean hidden_size?"},
	{name: "UnknownNestedBesideKind", doc: "model:\n  hiden_size: 3\n", line: 2, key: "model.hiden_size", msg: "unknown key; did you mean lstm.hidden_size?"},
	{name: "UnknownKindKey", doc: "model:\n  kind: resnet\n  resnet:\n    depht: 3\ndata:\n  source: cifar10\n", line: 4, key: "model.resnet.depht", msg: "unknown key; did you mean depth?"},
	{name: "UnknownFar", doc: "schedule:\n  kind: step\n", line: 2, key: "schedule.kind",
		msg: "unknown key; known keys: name, warmup_steps, step_size, gamma, min_lr"},

	// wrong types
	{name: "WordForInt", doc: "train:\n  epochs: ten\n", line: 2, key: "train.epochs", msg: `must be an integer (got "ten")`},
	{name: "FloatForInt", doc: "train:\n  epochs: 3.5\n", line: 2, key: "train.epochs", msg: `must be an integer (got "3.5")`},
	{name: "QuotedNumber", doc: "optimizer:\n  lr: \"0.1\"\n", line: 2, key: "optimizer.lr", msg: `must be a finite number (got "0.1")`},
	{name: "NaN", doc: "optimizer:\n  lr: .nan\n", line: 2, key: "optimizer.lr", msg: `must be a finite number (got ".nan")`},
	{name: "NegativeSeed", doc: "seed: -1\n", line: 1, key: "seed", msg: `must be a non-negative integer (got "-1")`},
	{name: "YesForBool", doc: "deterministic: yes\n", line: 1, key: "deterministic", msg: `must be true or false (got "yes")`},
	{name: "Null", doc: "train:\n  epochs:\n", line: 2, key: "train.epochs", msg: "must be an integer (got null)"},
	{name: "MappingForString", doc: "name: {a: 1}\n", line: 1, key: "name", msg: "must be a string (got a mapping)"},
	{name: "ScalarForSection", doc: "\nmodel: lstm\n", line: 2, key: "model", msg: `must be a mapping (got "lstm")`},
	{name: "BetasLength", doc: "optimizer:\n  betas: [0.9]\n", line: 2, key: "optimizer.betas", msg: "must be a list of 2 numbers (got a list of 1)"},
	{name: "BetasElement", doc: "optimizer:\n  betas:\n    - 0.9\n    - x\n", line: 4, key: "optimizer.betas[1]", msg: `must be a finite number (got "x")`},
	{name: "BadDate", doc: "data:\n  lstm:\n    start: 2023-02-30\n", line: 3, key: "data.lstm.start",
		msg: `must be a date (YYYY-MM-DD) or an RFC 3339 time (got "2023-02-30")`},

	// ranges and enums
	{name: "EpochsZero", doc: "train:\n  epochs: 0\n", line: 2, key: "train.epochs", msg: "must be >= 1 (got 0)"},
	{name: "HiddenTooBig", doc: "model:\n  lstm:\n    hidden_size: 5000\n", line: 3, key: "model.lstm.hidden_size", msg: "must be in [1, 4096] (got 5000)"},
	{name: "DropoutOne", doc: "model:\n  lstm: {dropout: 1}\n", line: 2, key: "model.lstm.dropout", msg: "must be in [0, 1) (got 1)"},
	{name: "TargetUnknown", doc: "model:\n  lstm:\n    target: kw\n", line: 3, key: "model.lstm.target", msg: `must be one of clearsky_index, cliper_residual, power (got "kw")`},
	{name: "LossUnknown", doc: "model:\n  lstm:\n    loss: l2\n", line: 3, key: "model.lstm.loss", msg: `must be one of mse, mae, huber (got "l2")`},
	{name: "HuberDeltaZero", doc: "model:\n  lstm:\n    huber_delta: 0\n", line: 3, key: "model.lstm.huber_delta", msg: "must be in (0, 1], a fraction of capacity (got 0)"},
	{name: "Latitude", doc: "data:\n  lstm:\n    latitude: -91\n", line: 3, key: "data.lstm.latitude", msg: "must be in [-90, 90] (got -91)"},
	{name: "Horizon", doc: "data:\n  lstm:\n    horizon_hours: 25\n", line: 3, key: "data.lstm.horizon_hours", msg: "must be in [1, 24] (got 25)"},
	{name: "Beta", doc: "optimizer:\n  betas: [0.9, 1.0]\n", line: 2, key: "optimizer.betas[1]", msg: "must be in [0, 1) (got 1)"},
	{name: "SyntheticCapacity", doc: "data:\n  lstm:\n    capacity_kw: 0\n", line: 3, key: "data.lstm.capacity_kw", msg: "must be > 0 for synthetic data (got 0)"},
	{name: "Gamma", doc: "schedule:\n  gamma: 0\n", line: 2, key: "schedule.gamma", msg: "must be in (0, 1] (got 0)"},
	{name: "EnumOptimizer", doc: "optimizer:\n  name: adma\n", line: 2, key: "optimizer.name", msg: `must be one of adam, adamw, sgd (got "adma")`},
	{name: "EnumModel", doc: "model:\n  kind: vit\n", line: 2, key: "model.kind", msg: `must be one of lstm, resnet (got "vit")`},
	{name: "ModelNeedsItsData", doc: "model:\n  kind: resnet\n", line: 2, key: "data.source", msg: `model.kind resnet trains on cifar100, cifar10, synthetic-cifar (got "synthetic")`},
	{name: "ResNetDepth", doc: "model:\n  kind: resnet\n  resnet:\n    depth: 20\ndata:\n  source: cifar10\n", line: 4, key: "model.resnet.depth", msg: `must be 18, 34, 50 or 101 (got 20)`},
	{name: "LabelSmoothing", doc: "model: {kind: resnet}\ndata: {source: synthetic-cifar}\ntrain:\n  resnet:\n    label_smoothing: 1\n", line: 5, key: "train.resnet.label_smoothing", msg: `must be in [0, 1) (got 1)`},
	{name: "BF16OnCPU", doc: "device: cpu\ntrain:\n  precision: bf16\n", line: 3, key: "train.precision", msg: `bf16 needs a CUDA device (device is cpu)`},
	{name: "EnumSchedule", doc: "schedule:\n  name: linear\n", line: 2, key: "schedule.name", msg: `must be one of constant, step, cosine, onecycle (got "linear")`},
	{name: "Device", doc: "device: cuda:x\n", line: 1, key: "device", msg: `must be auto, cpu, cuda or cuda:N (got "cuda:x")`},
	{name: "EmptyName", doc: "name: \"\"\n", line: 1, key: "name",
		msg: `must be letters, digits, '.', '_' or '-', starting with a letter or digit (got "")`},

	// cross-field rules: the error points at the key a layer set
	{name: "NesterovWithoutMomentum", doc: "optimizer:\n  name: sgd\n  momentum: 0\n  nesterov: true\n", line: 4,
		key: "optimizer.nesterov", msg: "requires optimizer.momentum > 0 (got 0)"},
	{name: "SplitsTooBig", doc: "data:\n  lstm:\n    train_frac: 0.8\n    val_frac: 0.2\n", line: 4, key: "data.lstm.val_frac",
		msg: "data.lstm.train_frac + data.lstm.val_frac must be < 1, leaving a test split (got 0.8 + 0.2)"},
	{name: "SplitsTooBigTrainOnly", doc: "data:\n  lstm:\n    train_frac: 0.9\n", line: 3, key: "data.lstm.val_frac",
		msg: "data.lstm.train_frac + data.lstm.val_frac must be < 1, leaving a test split (got 0.9 + 0.15)"},
	{name: "CSVWithoutPath", doc: "seed: 1\ndata:\n  source: csv\n", line: 3, key: "data.path", msg: "required when data.source is csv"},
	{name: "PVGISWithoutPath", doc: "data:\n  source: pvgis\n  path: \"\"\n", line: 3, key: "data.path", msg: "required when data.source is pvgis"},
	{name: "MinLRNotBelowLR", doc: "optimizer:\n  lr: 0.01\nschedule:\n  min_lr: 0.01\n", line: 4, key: "schedule.min_lr",
		msg: "must be < optimizer.lr (got 0.01, lr 0.01)"},
	{name: "MinLRFromSet", doc: "optimizer:\n  lr: 0.001\n", sets: []string{"schedule.min_lr=0.002"},
		file: "--set schedule.min_lr=0.002", key: "schedule.min_lr", msg: "must be < optimizer.lr (got 0.002, lr 0.001)"},

	// --set
	{name: "SetNoEquals", doc: "seed: 1\n", sets: []string{"train.epochs"}, file: "--set train.epochs", msg: "want dotted.key=value"},
	{name: "SetEmptyKey", doc: "seed: 1\n", sets: []string{"=3"}, file: "--set =3", msg: "malformed key: want dotted.key=value"},
	{name: "SetEmptySegment", doc: "seed: 1\n", sets: []string{"train..epochs=3"}, file: "--set train..epochs=3",
		key: "train..epochs", msg: "malformed key: want dotted.key=value"},
	{name: "SetUnknownKey", doc: "seed: 1\n", sets: []string{"train.epoch=3"}, file: "--set train.epoch=3",
		key: "train.epoch", msg: "unknown key; did you mean epochs?"},
	{name: "SetWrongType", doc: "seed: 1\n", sets: []string{"train.epochs=ten"}, file: "--set train.epochs=ten",
		key: "train.epochs", msg: `must be an integer (got "ten")`},
	{name: "SetOutOfRange", doc: "train:\n  epochs: 3\n", sets: []string{"train.epochs=0"}, file: "--set train.epochs=0",
		key: "train.epochs", msg: "must be >= 1 (got 0)"},
	{name: "SetBadYAML", doc: "seed: 1\n", sets: []string{"optimizer.betas=[0.9,"}, file: "--set optimizer.betas=[0.9,",
		key: "optimizer.betas", msg: "invalid YAML: did not find expected node content"},
	{name: "SetReplacesSection", doc: "seed: 1\n", sets: []string{"model=lstm"}, file: "--set model=lstm",
		key: "model", msg: `must be a mapping (got "lstm")`},
	{name: "SetSecondOfTwo", doc: "seed: 1\n", sets: []string{"seed=2", "seed=x"}, file: "--set seed=x",
		key: "seed", msg: `must be a non-negative integer (got "x")`},

	// issue 15: bounds checked up front, naming the key
	{name: "SetLayers", doc: "seed: 1\n", sets: []string{"layers.model=nope"}, file: "--set layers.model=nope", key: "layers.model",
		msg: "cannot be set with --set (the layers are read before any flag): name them in the layers section of an experiment or a --config file"},
	{name: "SetLayersSection", doc: "seed: 1\n", sets: []string{"layers={model: m}"}, file: "--set layers={model: m}", key: "layers",
		msg: "cannot be set with --set (the layers are read before any flag): name them in the layers section of an experiment or a --config file"},
	{name: "ThreadsTooMany", doc: "threads: 100000\n", line: 1, key: "threads", msg: "must be in [0, 1024], 0 = one per CPU core (got 100000)"},
	{name: "EpochsTooMany", doc: "train:\n  epochs: 9223372036854775807\n", line: 2, key: "train.epochs", msg: "must be <= 1000000 (got 9223372036854775807)"},
	{name: "DaysTooMany", doc: "data:\n  lstm:\n    days: 40000\n", line: 3, key: "data.lstm.days", msg: "must be <= 36600 (got 40000)"},
	{name: "DaysTooFewForWindows", doc: "data:\n  lstm:\n    days: 7\n", line: 3, key: "data.lstm.days",
		msg: "must be >= 20: each split (data.lstm.train_frac, data.lstm.val_frac, the rest) needs data.lstm.lookback_hours + data.lstm.horizon_hours (48 + 24) hours (got 7 days)"},
	{name: "StartOffTheHour", doc: "data:\n  lstm:\n    start: 2023-01-01T00:30:00Z\n", line: 3, key: "data.lstm.start",
		msg: "must be on the hour for synthetic data (got 2023-01-01T00:30:00Z)"},
	{name: "NameTooLong", doc: "name: " + strings.Repeat("a", 300) + "\n", line: 1, key: "name", msg: "must be at most 255 bytes, a file name (got 300)"},
	{name: "RunDirRoot", doc: "run_dir: /\n", line: 1, key: "run_dir", msg: `must not be a system folder: a run fills its run dir with files (got "/")`},
	{name: "RunDirUsr", doc: "run_dir: /usr/\n", line: 1, key: "run_dir", msg: `must not be a system folder: a run fills its run dir with files (got "/usr/")`},
	{name: "RunDirUnderEtc", doc: "run_dir: /etc/runs/x\n", line: 1, key: "run_dir", msg: `must not be a system folder: a run fills its run dir with files (got "/etc/runs/x")`},
	{name: "RunDirElementTooLong", doc: "run_dir: runs/" + strings.Repeat("b", 256) + "\n", line: 1, key: "run_dir", msg: "a folder name is at most 255 bytes (got one of 256)"},

	{name: "DigestNotHex", doc: "data:\n  source: csv\n  path: a.csv\n  digest: abc\n", line: 4, key: "data.digest",
		msg: `must be a SHA-256 in 64 lowercase hex digits (got "abc")`},
	{name: "DigestWithoutPath", doc: "data:\n  digest: " + strings.Repeat("0", 64) + "\n", line: 2, key: "data.digest",
		msg: "needs data.path: the digest is that of the data file"},

	{name: "BadNotice", doc: "preemption:\n  notice: azure\n", line: 2, key: "preemption.notice",
		msg: `must be one of auto, gcp, aws, none (got "azure")`},
	{name: "RemoteScheme", doc: "checkpoint:\n  remote: ftp://host/x\n", line: 2, key: "checkpoint.remote",
		msg: `"ftp://host/x": unsupported scheme ftp (want gs, s3 or file)`},
	{name: "RemoteNoBucket", doc: "checkpoint:\n  remote: gs:///x\n", line: 2, key: "checkpoint.remote",
		msg: `"gs:///x" has no bucket: want gs://BUCKET/PATH`},
	{name: "RemoteRunDirOutside", doc: "checkpoint:\n  remote: gs://b/x\nrun_dir: ../elsewhere\n", line: 3, key: "run_dir",
		msg: `the run's copy goes under checkpoint.remote at the path of run_dir, which must name a directory inside the current one or an absolute one (got "../elsewhere")`},
	{name: "RemoteGrace", doc: "checkpoint:\n  remote_grace: -1s\n", line: 2, key: "checkpoint.remote_grace", msg: "must be >= 0 (got -1s)"},

	// the strategy settings: validated here only (checkpoint.NewStrategy trusts them)
	{name: "Strategy", doc: "checkpoint:\n  strategy: Fixed\n", line: 2, key: "checkpoint.strategy", msg: `must be one of fixed, adaptive, milestone (got "Fixed")`},
	{name: "EverySteps", doc: "checkpoint:\n  every_steps: -1\n", line: 2, key: "checkpoint.every_steps", msg: "must be >= 0 (got -1)"},
	{name: "EverySeconds", doc: "checkpoint:\n  every_seconds: -1\n", line: 2, key: "checkpoint.every_seconds", msg: "must be >= 0 (got -1)"},
	{name: "MinSeconds", doc: "checkpoint:\n  min_seconds: 0\n", line: 2, key: "checkpoint.min_seconds", msg: "must be > 0 (got 0)"},
	{name: "PriorMTBI", doc: "checkpoint:\n  prior_mtbi_seconds: 0\n", line: 2, key: "checkpoint.prior_mtbi_seconds", msg: "must be > 0 (got 0)"},
	{name: "EMA", doc: "checkpoint:\n  ema: 1.01\n", line: 2, key: "checkpoint.ema", msg: "must be in (0, 1] (got 1.01)"},
	{name: "Mode", doc: "checkpoint:\n  metric: top1\n  mode: best\n", line: 3, key: "checkpoint.mode", msg: `must be min, max or "" (the metric's own; got "best")`},
	{name: "ModeWithoutMetric", doc: "checkpoint:\n  mode: max\n", line: 2, key: "checkpoint.mode", msg: "needs checkpoint.metric"},

	// interrupts: preemption.Config's rules, under their keys
	{name: "InterruptGraceZero", doc: "interrupts:\n  grace: 0s\n", line: 2, key: "interrupts.grace", msg: "must be > 0 (got 0s)"},
	{name: "InterruptJitter", doc: "interrupts:\n  pattern: regular\n  jitter: 1\n", line: 3, key: "interrupts.jitter", msg: "must be in [0, 1), got 1"},
	{name: "InterruptStormMean", doc: "interrupts:\n  pattern: bursty\n  storm_mean: 0s\n", line: 3, key: "interrupts.storm_mean", msg: "must be positive, got 0s"},
	{name: "InterruptTimeScale", doc: "interrupts:\n  time_scale: 0\n", line: 2, key: "interrupts.time_scale", msg: "must be > 0 (got 0)"},
	{name: "InterruptMachinesZero", doc: "interrupts:\n  machines: 0\n", line: 2, key: "interrupts.machines", msg: "must be in [1, 1024] (got 0)"},
	{name: "InterruptMachinesOnNodes", doc: "interrupts:\n  machines: 2\ndistributed:\n  nnodes: 2\n  master_addr: h\n", line: 2, key: "interrupts.machines",
		msg: "simulated machines all run on this one: not with distributed.nnodes 2"},
	{name: "InterruptMachinesBatch", doc: "train:\n  batch_size: 30\ninterrupts:\n  machines: 4\n", line: 2, key: "train.batch_size",
		msg: "30 is not divisible by interrupts.machines 4 × distributed.nproc_per_node 1 (each process takes an equal share of every batch)"},

	// distributed
	{name: "NProcZero", doc: "distributed:\n  nproc_per_node: 0\n", line: 2, key: "distributed.nproc_per_node", msg: "must be in [1, 1024] (got 0)"},
	{name: "NProcTooMany", doc: "distributed:\n  nproc_per_node: 2048\n", line: 2, key: "distributed.nproc_per_node", msg: "must be in [1, 1024] (got 2048)"},
	{name: "NProcNotInteger", doc: "distributed:\n  nproc_per_node: 1.5\n", line: 2, key: "distributed.nproc_per_node", msg: `must be an integer (got "1.5")`},
	{name: "Backend", doc: "distributed:\n  backend: mpi\n", line: 2, key: "distributed.backend", msg: `must be one of auto, gloo, nccl (got "mpi")`},
	{name: "NCCLOnCPU", doc: "device: cpu\ndistributed:\n  backend: nccl\n", line: 3, key: "distributed.backend",
		msg: "nccl needs a CUDA device (device is cpu): use gloo or auto"},
	{name: "TimeoutShort", doc: "distributed:\n  timeout: 500ms\n", line: 2, key: "distributed.timeout", msg: "must be in [1s, 1h] (got 500ms)"},
	{name: "TimeoutLong", doc: "distributed:\n  timeout: 2h\n", line: 2, key: "distributed.timeout", msg: "must be in [1s, 1h] (got 2h0m0s)"},
	{name: "TimeoutNotDuration", doc: "distributed:\n  timeout: 30\n", line: 2, key: "distributed.timeout", msg: `must be a duration such as 90s, 15m or 2h30m (got "30")`},
	{name: "BucketZero", doc: "distributed:\n  bucket_mb: 0\n", line: 2, key: "distributed.bucket_mb", msg: "must be in (0, 1024] (got 0)"},
	{name: "BucketHuge", doc: "distributed:\n  bucket_mb: 4096\n", line: 2, key: "distributed.bucket_mb", msg: "must be in (0, 1024] (got 4096)"},
	{name: "BatchNotDivisible", doc: "train:\n  batch_size: 30\ndistributed:\n  nproc_per_node: 4\n", line: 2, key: "train.batch_size",
		msg: "30 is not divisible by distributed.nproc_per_node 4 (each process takes an equal share of every batch)"},
	{name: "SetNProcNotDividing", doc: "train:\n  batch_size: 30\n", sets: []string{"distributed.nproc_per_node=4"}, line: 2, key: "train.batch_size",
		msg: "30 is not divisible by distributed.nproc_per_node 4 (each process takes an equal share of every batch)"},
	{name: "UnknownDistributedKey", doc: "distributed:\n  nprocs: 2\n", line: 2, key: "distributed.nprocs",
		msg: "unknown key; known keys: nproc_per_node, backend, timeout, bucket_mb, nnodes, node_rank, master_addr, master_port, min_nodes"},
	{name: "NNodesZero", doc: "distributed:\n  nnodes: 0\n", line: 2, key: "distributed.nnodes", msg: "must be in [1, 1024] (got 0)"},
	{name: "NNodesTooMany", doc: "distributed:\n  nnodes: 1025\n", line: 2, key: "distributed.nnodes", msg: "must be in [1, 1024] (got 1025)"},
	{name: "NodeRankNotBelow", doc: "distributed:\n  nnodes: 2\n  master_addr: h\n  node_rank: 2\n", line: 4, key: "distributed.node_rank",
		msg: "must be in [0, distributed.nnodes) = [0, 2) (got 2)"},
	{name: "NodeRankNegative", doc: "distributed:\n  node_rank: -1\n", line: 2, key: "distributed.node_rank",
		msg: "must be in [0, distributed.nnodes) = [0, 1) (got -1)"},
	{name: "MasterAddrRequired", doc: "distributed:\n  nnodes: 2\n", line: 2, key: "distributed.master_addr",
		msg: "required when distributed.nnodes is more than 1 (got 2): the address of node 0, which hosts the rendezvous store"},
	{name: "MasterAddrSpace", doc: "distributed:\n  master_addr: a b\n", line: 2, key: "distributed.master_addr", msg: `must be a host name or an IP address (got "a b")`},
	{name: "MasterPortZero", doc: "distributed:\n  master_port: 0\n", line: 2, key: "distributed.master_port", msg: "must be in [1, 65535] (got 0)"},
	{name: "MasterPortHigh", doc: "distributed:\n  master_port: 65536\n", line: 2, key: "distributed.master_port", msg: "must be in [1, 65535] (got 65536)"},
	{name: "MinNodesAboveNNodes", doc: "distributed:\n  min_nodes: 2\n", line: 2, key: "distributed.min_nodes", msg: "must be in [0, distributed.nnodes] = [0, 1] (got 2)"},
	{name: "BatchNotDivisibleNodes", doc: "train:\n  batch_size: 30\ndistributed:\n  nnodes: 4\n  master_addr: h\n", line: 2, key: "train.batch_size",
		msg: "30 is not divisible by distributed.nnodes 4 × distributed.nproc_per_node 1 (each process takes an equal share of every batch)"},

	// cost
	{name: "UnknownGPU", doc: "cost:\n  gpu: rtx9090\n", line: 2, key: "cost.gpu",
		msg: `unknown GPU "rtx9090": the price list has nvidia-a100-40gb, nvidia-l4, nvidia-t4, nvidia-v100; or set cost.spot_per_hour and cost.on_demand_per_hour`},
	{name: "NoGPUNoPrice", doc: "cost:\n  gpu: \"\"\n  on_demand_per_hour: 2\n", line: 2, key: "cost.spot_per_hour",
		msg: "must be > 0, or name cost.gpu (got 0)"},
	{name: "NegativePrice", doc: "cost:\n  spot_per_hour: -1\n", line: 2, key: "cost.spot_per_hour",
		msg: "must be > 0, or name cost.gpu (got -1)"},
}

// TestErrors: each bad document is one *Error with its file, line, key and message.
func TestErrors(t *testing.T) {
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := configs.LoadBytes("cfg.yaml", []byte(tt.doc), "", tt.sets)
			var cerr *configs.Error
			require.ErrorAs(t, err, &cerr)
			file := tt.file
			if file == "" {
				file = "cfg.yaml"
			}
			assert.Equal(t, configs.Error{File: file, Line: tt.line, Key: tt.key, Msg: tt.msg}, *cerr)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := configs.Load(path, nil)
	var cerr *configs.Error
	require.ErrorAs(t, err, &cerr)
	assert.Equal(t, path+": cannot read: no such file or directory", err.Error())
}

func TestLoadNamesFile(t *testing.T) {
	path := testutil.WriteTemp(t, "cfg.yaml", "name: x\ntrain:\n  epochs: 0\n")
	_, err := configs.Load(path, nil)
	require.Error(t, err)
	assert.Equal(t, path+":3: train.epochs: must be >= 1 (got 0)", err.Error())
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  configs.Error
		want string
	}{
		{configs.Error{File: "cfg.yaml", Line: 12, Key: "train.epochs", Msg: "must be >= 1 (got 0)"}, "cfg.yaml:12: train.epochs: must be >= 1 (got 0)"},
		{configs.Error{File: "--set train.epochs=0", Key: "train.epochs", Msg: "must be >= 1 (got 0)"}, "--set train.epochs=0: train.epochs: must be >= 1 (got 0)"},
		{configs.Error{File: "cfg.yaml", Msg: "no settings (the document is empty)"}, "cfg.yaml: no settings (the document is empty)"},
		{configs.Error{Key: "seed", Msg: "bad"}, "seed: bad"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.err.Error())
	}
	var err error = &configs.Error{Msg: "x"}
	var cerr *configs.Error
	assert.True(t, errors.As(err, &cerr))
}

func TestValidateReportsKey(t *testing.T) {
	c := configs.Default()
	c.Train.BatchSize = 0
	assert.Equal(t, &configs.Error{Key: "train.batch_size", Msg: "must be >= 1 (got 0)"}, c.Validate())
}

func TestHash(t *testing.T) {
	dir := t.TempDir()
	// Non-default values everywhere it matters, written unusually.
	path := testutil.WriteFile(t, filepath.Join(dir, "cfg.yaml"), `
schedule: {name: step, step_size: 10, gamma: 0.25}
optimizer:
  name: sgd
  lr: 1e-2
  nesterov: true
data:
  source: csv
  path: pv.csv
  lstm:
    start: 2024-03-01T00:00:00.5-01:00
    power_unit: W
seed: 18446744073709551615
`)
	c, err := configs.Load(path, []string{"optimizer.betas=[0, 0.5]", "device=cuda:1"})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "pv.csv"), c.Data.Path)

	doc, err := c.YAML()
	require.NoError(t, err)
	saved := testutil.WriteTemp(t, "config.yaml", string(doc))
	back, err := configs.Load(saved, nil)
	require.NoError(t, err)
	assert.Equal(t, c, back)
	assert.Equal(t, c.Hash(), back.Hash())
	assert.Len(t, c.Hash(), 64)

	t.Run("SpellingDoesNotMatter", func(t *testing.T) {
		a, err := configs.LoadBytes("a.yaml", []byte("optimizer:\n  lr: 0.001\ntrain: {epochs: 10}\n"), "", nil)
		require.NoError(t, err)
		b, err := configs.LoadBytes("b.yaml", []byte("train:\n  epochs: 10\noptimizer: {lr: 1.0e-3}\n"), "", nil)
		require.NoError(t, err)
		assert.Equal(t, a.Hash(), b.Hash())
		assert.Equal(t, configs.Default().Hash(), a.Hash())
	})
	t.Run("ChangesWithValue", func(t *testing.T) {
		changed := c
		changed.Optimizer.Betas[1] = 0.51
		assert.NotEqual(t, c.Hash(), changed.Hash())
		changed = c
		changed.Deterministic = true
		assert.NotEqual(t, c.Hash(), changed.Hash())
	})
	t.Run("DefaultRoundTrip", func(t *testing.T) {
		doc, err := configs.Default().YAML()
		require.NoError(t, err)
		d, err := configs.LoadBytes("config.yaml", doc, "", nil)
		require.NoError(t, err)
		assert.Equal(t, configs.Default(), d)
	})
}

// TestDistributed: the section's defaults, a document that sets it, and its round trip.
func TestDistributed(t *testing.T) {
	assert.Equal(t, configs.DistributedConfig{NProcPerNode: 1, Backend: "auto", Timeout: 30 * time.Second, BucketMB: 25,
		NNodes: 1, MasterPort: 29500}, configs.Default().Distributed)
	c, err := configs.LoadBytes("cfg.yaml", []byte("train:\n  batch_size: 48\ndistributed:\n  nproc_per_node: 3\n  backend: gloo\n  timeout: 1m30s\n  bucket_mb: 0.5\n"+
		"  nnodes: 3\n  master_addr: 10.0.0.1\n"),
		"", []string{"distributed.nproc_per_node=4", "distributed.nnodes=2", "distributed.node_rank=1", "distributed.master_port=29600"})
	require.NoError(t, err)
	assert.Equal(t, configs.DistributedConfig{NProcPerNode: 4, Backend: "gloo", Timeout: 90 * time.Second, BucketMB: 0.5,
		NNodes: 2, NodeRank: 1, MasterAddr: "10.0.0.1", MasterPort: 29600}, c.Distributed)
	doc, err := c.YAML()
	require.NoError(t, err)
	assert.Contains(t, string(doc), "distributed:\n  nproc_per_node: 4\n  backend: gloo\n  timeout: 1m30s\n  bucket_mb: 0.5\n"+
		"  nnodes: 2\n  node_rank: 1\n  master_addr: 10.0.0.1\n  master_port: 29600\n")
	back, err := configs.LoadBytes("config.yaml", doc, "", nil)
	require.NoError(t, err)
	assert.Equal(t, c, back)
}

func TestPrices(t *testing.T) {
	p, err := configs.Default().Cost.Prices()
	require.NoError(t, err)
	assert.Equal(t, "nvidia-l4", p.GPU)
	assert.Greater(t, p.OnDemandPerHour, p.SpotPerHour)
	assert.Contains(t, p.Source, "cloud.google.com")
	assert.NotEmpty(t, p.AsOf)

	// One's own prices override the list, and take no source from it.
	p, err = configs.CostConfig{GPU: "nvidia-t4", SpotPerHour: 0.1, OnDemandPerHour: 0.4, Source: "my bill", AsOf: "2026-11"}.Prices()
	require.NoError(t, err)
	assert.Equal(t, configs.Prices{GPU: "nvidia-t4", SpotPerHour: 0.1, OnDemandPerHour: 0.4, Source: "my bill", AsOf: "2026-11"}, p)
	assert.InDelta(t, 0.25, p.Ratio(), 1e-12)
	assert.Equal(t, "nvidia-t4: $0.10/h spot, $0.40/h on demand (75% off); source: my bill, as of 2026-11", p.String())

	// Prices without a GPU.
	p, err = configs.CostConfig{SpotPerHour: 1, OnDemandPerHour: 3}.Prices()
	require.NoError(t, err)
	assert.Equal(t, "GPU: $1.00/h spot, $3.00/h on demand (67% off)", p.String())

	for _, g := range configs.GPUs() {
		p, err := configs.CostConfig{GPU: g}.Prices()
		require.NoError(t, err, g)
		assert.Less(t, p.SpotPerHour, p.OnDemandPerHour, "%s: spot is a discount", g)
	}
}
