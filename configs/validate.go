package configs

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"spottrain/checkpoint"
	"spottrain/preemption"
)

// Allowed values of the enum fields; extend here (and in the code that switches on them).
var (
	modelKinds  = []string{"lstm", "resnet"}
	dataSources = []string{"synthetic", "csv", "pvgis", "cifar100", "cifar10", "synthetic-cifar"}
	// The sources each model kind trains on.
	solarSources = []string{"synthetic", "csv", "pvgis"}
	imageSources = []string{"cifar100", "cifar10", "synthetic-cifar"}
	resnetDepths = []int{18, 34, 50, 101}
	stems        = []string{"cifar", "imagenet"}
	precisions   = []string{"fp32", "bf16"}
	powerUnits   = []string{"kW", "W"}
	optimizers   = []string{"adam", "adamw", "sgd"}
	schedules    = []string{"constant", "step", "cosine", "onecycle"}
	strategies   = []string{"fixed", "adaptive", "milestone"}
	patterns     = []string{"none", "regular", "poisson", "bursty"}

	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	deviceRE = regexp.MustCompile(`^(auto|cpu|cuda(:[0-9]+)?)$`)
)

// Validate reports the first rule c breaks as an *Error with Key and Msg (no File or
// Line: Load adds those), or nil. Load has already validated what it returns.
func (c Config) Validate() error {
	if p := c.problem(); p != nil {
		return &Error{Key: p.keys[0], Msg: p.msg}
	}
	return nil
}

// A problem is a broken rule: keys[0] is the key reported, and the first of keys that a
// layer set is where the error points.
type problem struct {
	keys []string
	msg  string
}

// A checker keeps the first problem it is told of.
type checker struct{ first *problem }

// cross records a problem at keys unless ok.
func (ch *checker) cross(ok bool, keys []string, format string, args ...any) {
	if !ok && ch.first == nil {
		ch.first = &problem{keys: keys, msg: fmt.Sprintf(format, args...)}
	}
}

// want records a problem at key unless ok.
func (ch *checker) want(ok bool, key, format string, args ...any) {
	ch.cross(ok, []string{key}, format, args...)
}

// atLeast wants v >= lo.
func (ch *checker) atLeast(key string, v, lo int) {
	ch.want(v >= lo, key, "must be >= %d (got %d)", lo, v)
}

// between wants lo <= v <= hi.
func (ch *checker) between(key string, v, lo, hi int) {
	ch.want(v >= lo && v <= hi, key, "must be in [%d, %d] (got %d)", lo, hi, v)
}

// oneOf wants v in allowed.
func (ch *checker) oneOf(key, v string, allowed []string) {
	ch.want(slices.Contains(allowed, v), key, "must be one of %s (got %q)", strings.Join(allowed, ", "), v)
}

func (c Config) problem() *problem {
	var ch checker
	ch.want(nameRE.MatchString(c.Name), "name", "must be letters, digits, '.', '_' or '-', starting with a letter or digit (got %q)", c.Name)
	ch.want(deviceRE.MatchString(c.Device), "device", "must be auto, cpu, cuda or cuda:N (got %q)", c.Device)
	ch.atLeast("threads", c.Threads, 0)
	ch.want(c.RunDir != "", "run_dir", "must not be empty")

	m := c.Model
	ch.oneOf("model.kind", m.Kind, modelKinds)
	ch.between("model.hidden_size", m.HiddenSize, 1, 4096)
	ch.between("model.num_layers", m.NumLayers, 1, 16)
	ch.want(m.Dropout >= 0 && m.Dropout < 1, "model.dropout", "must be in [0, 1) (got %v)", m.Dropout)
	ch.want(slices.Contains(resnetDepths, m.Depth), "model.depth", "must be 18, 34, 50 or 101 (got %d)", m.Depth)
	ch.want(m.Width > 0 && m.Width <= 16, "model.width", "must be in (0, 16] (got %v)", m.Width)
	ch.oneOf("model.stem", m.Stem, stems)

	d := c.Data
	ch.oneOf("data.source", d.Source, dataSources)
	if m.Kind == "resnet" {
		ch.cross(slices.Contains(imageSources, d.Source), []string{"data.source", "model.kind"},
			"model.kind resnet trains on %s (got %q)", strings.Join(imageSources, ", "), d.Source)
	} else {
		ch.cross(slices.Contains(solarSources, d.Source), []string{"data.source", "model.kind"},
			"model.kind %s trains on %s (got %q)", m.Kind, strings.Join(solarSources, ", "), d.Source)
	}
	ch.cross(strings.HasPrefix(d.Source, "synthetic") || d.Path != "", []string{"data.path", "data.source"}, "required when data.source is %s", d.Source)
	ch.atLeast("data.workers", d.Workers, 0)
	ch.between("data.synthetic_samples", d.SyntheticSamples, 10, 10_000_000)
	ch.between("data.classes", d.Classes, 2, 1000)
	if d.Source == "csv" {
		ch.want(d.TimestampColumn != "", "data.timestamp_column", "must not be empty for csv")
		ch.want(d.PowerColumn != "", "data.power_column", "must not be empty for csv")
	}
	ch.oneOf("data.power_unit", d.PowerUnit, powerUnits)
	ch.want(math.Abs(d.Latitude) <= 90, "data.latitude", "must be in [-90, 90] (got %v)", d.Latitude)
	ch.want(math.Abs(d.Longitude) <= 180, "data.longitude", "must be in [-180, 180] (got %v)", d.Longitude)
	if d.Source == "synthetic" {
		ch.want(d.CapacityKW > 0, "data.capacity_kw", "must be > 0 for synthetic data (got %v)", d.CapacityKW)
	} else {
		ch.want(d.CapacityKW >= 0, "data.capacity_kw", "must be >= 0, 0 = the maximum observed (got %v)", d.CapacityKW)
	}
	ch.atLeast("data.days", d.Days, 7)
	ch.want(d.CloudPersistence >= 0 && d.CloudPersistence < 1, "data.cloud_persistence", "must be in [0, 1) (got %v)", d.CloudPersistence)
	ch.want(d.Noise >= 0 && d.Noise <= 0.5, "data.noise", "must be in [0, 0.5] (got %v)", d.Noise)
	ch.atLeast("data.max_gap_fill_hours", d.MaxGapFillHours, 0)
	ch.between("data.lookback_hours", d.LookbackHours, 24, 720)
	ch.between("data.horizon_hours", d.HorizonHours, 1, 24)
	ch.want(d.TrainFrac > 0 && d.TrainFrac < 1, "data.train_frac", "must be in (0, 1) (got %v)", d.TrainFrac)
	ch.want(d.ValFrac > 0 && d.ValFrac < 1, "data.val_frac", "must be in (0, 1) (got %v)", d.ValFrac)
	ch.cross(d.TrainFrac+d.ValFrac < 1, []string{"data.val_frac", "data.train_frac"},
		"data.train_frac + data.val_frac must be < 1, leaving a test split (got %v + %v)", d.TrainFrac, d.ValFrac)

	t := c.Train
	ch.atLeast("train.epochs", t.Epochs, 1)
	ch.atLeast("train.batch_size", t.BatchSize, 1)
	ch.atLeast("train.max_steps", t.MaxSteps, 0)
	ch.atLeast("train.log_every", t.LogEvery, 1)
	ch.want(t.GradClip >= 0, "train.grad_clip", "must be >= 0 (got %v)", t.GradClip)
	ch.atLeast("train.eval_batch_size", t.EvalBatchSize, 1)
	ch.want(t.LabelSmoothing >= 0 && t.LabelSmoothing < 1, "train.label_smoothing", "must be in [0, 1) (got %v)", t.LabelSmoothing)
	ch.oneOf("train.precision", t.Precision, precisions)
	ch.cross(t.Precision == "fp32" || c.Device != "cpu", []string{"train.precision", "device"}, "bf16 needs a CUDA device (device is cpu)")

	o := c.Optimizer
	ch.oneOf("optimizer.name", o.Name, optimizers)
	ch.want(o.LR > 0, "optimizer.lr", "must be > 0 (got %v)", o.LR)
	ch.want(o.WeightDecay >= 0, "optimizer.weight_decay", "must be >= 0 (got %v)", o.WeightDecay)
	for i, b := range o.Betas {
		ch.want(b >= 0 && b < 1, fmt.Sprintf("optimizer.betas[%d]", i), "must be in [0, 1) (got %v)", b)
	}
	ch.want(o.Eps > 0, "optimizer.eps", "must be > 0 (got %v)", o.Eps)
	ch.want(o.Momentum >= 0 && o.Momentum < 1, "optimizer.momentum", "must be in [0, 1) (got %v)", o.Momentum)
	ch.cross(!o.Nesterov || o.Momentum > 0, []string{"optimizer.nesterov", "optimizer.momentum"},
		"requires optimizer.momentum > 0 (got %v)", o.Momentum)

	s := c.Schedule
	ch.oneOf("schedule.name", s.Name, schedules)
	ch.atLeast("schedule.warmup_steps", s.WarmupSteps, 0)
	ch.atLeast("schedule.step_size", s.StepSize, 1)
	ch.want(s.Gamma > 0 && s.Gamma <= 1, "schedule.gamma", "must be in (0, 1] (got %v)", s.Gamma)
	ch.want(s.MinLR >= 0, "schedule.min_lr", "must be >= 0 (got %v)", s.MinLR)
	ch.cross(s.MinLR < o.LR, []string{"schedule.min_lr", "optimizer.lr"},
		"must be < optimizer.lr (got %v, lr %v)", s.MinLR, o.LR)

	k := c.Checkpoint
	ch.oneOf("checkpoint.strategy", k.Strategy, strategies)
	ch.atLeast("checkpoint.every_steps", k.EverySteps, 0)
	ch.want(k.EverySeconds >= 0, "checkpoint.every_seconds", "must be >= 0 (got %v)", k.EverySeconds)
	ch.want(k.MinSeconds > 0, "checkpoint.min_seconds", "must be > 0 (got %v)", k.MinSeconds)
	ch.cross(k.MaxSeconds >= k.MinSeconds, []string{"checkpoint.max_seconds", "checkpoint.min_seconds"},
		"must be >= checkpoint.min_seconds (got %v < %v)", k.MaxSeconds, k.MinSeconds)
	ch.want(k.PriorMTBISeconds > 0, "checkpoint.prior_mtbi_seconds", "must be > 0 (got %v)", k.PriorMTBISeconds)
	ch.want(k.EMA > 0 && k.EMA <= 1, "checkpoint.ema", "must be in (0, 1] (got %v)", k.EMA)
	ch.want(k.Mode == "" || k.Mode == "min" || k.Mode == "max", "checkpoint.mode", `must be min, max or "" (the metric's own; got %q)`, k.Mode)
	ch.cross(k.Mode == "" || k.Metric != "", []string{"checkpoint.mode", "checkpoint.metric"}, "needs checkpoint.metric")
	ch.atLeast("checkpoint.keep", k.Keep, 1)
	ch.want(k.RemoteGrace >= 0, "checkpoint.remote_grace", "must be >= 0 (got %v)", k.RemoteGrace)
	if k.Remote != "" {
		if err := checkpoint.CheckRemoteURL(k.Remote); err != nil {
			ch.want(false, "checkpoint.remote", "%v", err)
		} else if rel := filepath.ToSlash(filepath.Clean(c.RunDir)); rel == "." || rel == "/" || strings.HasPrefix(rel, "../") || rel == ".." {
			ch.cross(false, []string{"run_dir", "checkpoint.remote"}, "the run's copy goes under checkpoint.remote at the path of run_dir, which must name a directory inside the current one or an absolute one (got %q)", c.RunDir)
		}
	}

	i := c.Interrupts
	ch.oneOf("interrupts.pattern", i.Pattern, patterns)
	if i.Pattern != "none" {
		if err := i.Preemption(0).Validate(); err != nil {
			var fe *preemption.FieldError
			if !errors.As(err, &fe) || interruptKeys[fe.Field] == "" {
				panic("configs: unexpected error from preemption: " + err.Error()) // keep interruptKeys complete
			}
			key := "interrupts." + interruptKeys[fe.Field]
			ch.want(false, key, "%s", fe.Msg)
		}
	}
	ch.want(i.Grace > 0, "interrupts.grace", "must be > 0 (got %s)", i.Grace)
	ch.want(i.RestartDelay >= 0, "interrupts.restart_delay", "must be >= 0 (got %s)", i.RestartDelay)
	ch.want(i.TimeScale > 0, "interrupts.time_scale", "must be > 0 (got %v)", i.TimeScale)

	ch.oneOf("preemption.notice", c.Preemption.Notice, preemption.NoticeSources)

	if _, err := c.Cost.Prices(); err != nil {
		var ce *Error
		errors.As(err, &ce)
		// A missing price points at the key that set it, or at the GPU that left it unset.
		ch.cross(false, []string{ce.Key, "cost.gpu"}, "%s", ce.Msg)
	}
	return ch.first
}

// interruptKeys maps the fields of preemption.Config to the keys of InterruptsConfig.
var interruptKeys = map[string]string{
	"Kind": "pattern", "Every": "every", "Jitter": "jitter", "RatePerHour": "rate_per_hour",
	"QuietRatePerHour": "quiet_rate_per_hour", "StormRatePerHour": "storm_rate_per_hour",
	"QuietMean": "quiet_mean", "StormMean": "storm_mean", "NoNoticeShare": "no_notice_share",
	"Grace": "grace", "RestartDelay": "restart_delay", "TimeScale": "time_scale",
}
