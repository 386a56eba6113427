package configs

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"spottrain/checkpoint"
	"spottrain/data/solar"
	"spottrain/preemption"
)

// Allowed values of the enum fields; extend here (and in the code that switches on them).
var (
	modelKinds  = []string{KindLSTM, KindResNet}
	dataSources = []string{"synthetic", "csv", "pvgis", "cifar100", "cifar10", "synthetic-cifar"}
	// The sources each model kind trains on.
	solarSources = []string{"synthetic", "csv", "pvgis"}
	imageSources = []string{"cifar100", "cifar10", "synthetic-cifar"}
	resnetDepths = []int{18, 34, 50, 101}
	stems        = []string{"cifar", "imagenet"}
	precisions   = []string{"fp32", "bf16"}
	powerUnits   = []string{"kW", "W"}
	lstmLosses   = []string{"mse", "mae", "huber"}
	optimizers   = []string{"adam", "adamw", "sgd"}
	schedules    = []string{"constant", "step", "cosine", "onecycle"}
	strategies   = []string{checkpoint.StrategyFixed, checkpoint.StrategyAdaptive, checkpoint.StrategyMilestone}
	backends     = []string{"auto", "gloo", "nccl"}

	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	deviceRE = regexp.MustCompile(`^(auto|cpu|cuda(:[0-9]+)?)$`)
	digestRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

	// systemDirs are folders a run dir must not be: a run would fill them with its files.
	systemDirs = []string{"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
		"/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/var"}
	// systemTrees are folders nothing of a run may be under.
	systemTrees = []string{"/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/sbin", "/sys"}
)

// Bounds that a typo breaks at validation, naming its key, rather than hours later, in the Go
// runtime or as an overflow.
const (
	maxThreads   = 1024      // libtorch intra-op threads
	maxEpochs    = 1_000_000 // epochs times batches stays far from overflowing an int
	maxSynthDays = 36600     // 100 years of synthetic PV history
	maxNameBytes = 255       // a file name (one path element) on Linux file systems
	maxPathBytes = 3800      // PATH_MAX (4096), less room for the files a run keeps in its run dir
	maxProcs     = 1024      // worker processes on one machine
	maxNodes     = 1024      // machines of one job
	maxBucketMB  = 1024      // a gradient bucket
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

// atMost wants v <= hi.
func (ch *checker) atMost(key string, v, hi int) {
	ch.want(v <= hi, key, "must be <= %d (got %d)", hi, v)
}

// between wants lo <= v <= hi.
func (ch *checker) between(key string, v, lo, hi int) {
	ch.want(v >= lo && v <= hi, key, "must be in [%d, %d] (got %d)", lo, hi, v)
}

// oneOf wants v in allowed.
func (ch *checker) oneOf(key, v string, allowed []string) {
	ch.want(slices.Contains(allowed, v), key, "must be one of %s (got %q)", strings.Join(allowed, ", "), v)
}

// kindSection wants the subsection key (model.lstm, train.resnet, ...), named for a model kind,
// present exactly when that kind is the config's.
func (ch *checker) kindSection(key string, present bool, kind string) {
	own := key[strings.LastIndex(key, ".")+1:]
	if present {
		ch.want(own == kind, key, "only for model.kind %s (model.kind is %s)", own, kind)
	} else {
		ch.want(own != kind, key, "required for model.kind %s", kind)
	}
}

// problem returns the first rule c breaks, section by section, or nil.
func (c Config) problem() *problem {
	var ch checker
	ch.want(nameRE.MatchString(c.Name), "name", "must be letters, digits, '.', '_' or '-', starting with a letter or digit (got %q)", c.Name)
	ch.want(len(c.Name) <= maxNameBytes, "name", "must be at most %d bytes, a file name (got %d)", maxNameBytes, len(c.Name))
	ch.want(deviceRE.MatchString(c.Device), "device", "must be auto, cpu, cuda or cuda:N (got %q)", c.Device)
	ch.want(c.Threads >= 0 && c.Threads <= maxThreads, "threads", "must be in [0, %d], 0 = one per CPU core (got %d)", maxThreads, c.Threads)
	checkRunDir(&ch, c.RunDir)
	checkModel(&ch, c.Model)
	checkData(&ch, c.Data, c.Model.Kind)
	checkTrain(&ch, c.Train, c.Model.Kind, c.Device)
	checkOptimizer(&ch, c.Optimizer)
	checkSchedule(&ch, c.Schedule, c.Optimizer.LR)
	checkCheckpoint(&ch, c.Checkpoint, c.RunDir)
	if err := c.Interrupts.Validate(); err != nil {
		var fe *preemption.FieldError
		errors.As(err, &fe) // every error of Validate is one
		ch.want(false, "interrupts."+fe.Key, "%s", fe.Msg)
	}
	ch.oneOf("preemption.notice", c.Preemption.Notice, preemption.NoticeSources)
	checkDistributed(&ch, c.Distributed, c.Device, c.Train.BatchSize)
	checkMachines(&ch, c.Interrupts.Machines, c.Distributed, c.Train.BatchSize)
	if _, err := c.Cost.Prices(); err != nil {
		var ce *Error
		errors.As(err, &ce)
		// A missing price points at the key that set it, or at the GPU that left it unset.
		ch.cross(false, []string{ce.Key, "cost.gpu"}, "%s", ce.Msg)
	}
	return ch.first
}

// checkRunDir wants run_dir to be a folder the file system can create, and no system folder.
func checkRunDir(ch *checker, dir string) {
	ch.want(dir != "", "run_dir", "must not be empty")
	for _, e := range strings.Split(filepath.ToSlash(dir), "/") {
		ch.want(len(e) <= maxNameBytes, "run_dir", "a folder name is at most %d bytes (got one of %d)", maxNameBytes, len(e))
	}
	abs, err := filepath.Abs(dir)
	ch.want(err == nil && len(abs) <= maxPathBytes, "run_dir", "must be at most %d bytes as an absolute path (got %d)", maxPathBytes, len(abs))
	system := slices.Contains(systemDirs, abs)
	for _, t := range systemTrees {
		system = system || strings.HasPrefix(abs, t+"/")
	}
	ch.want(!system, "run_dir", "must not be a system folder: a run fills its run dir with files (got %q)", dir)
}

// checkDistributed checks the distributed section, and that every process takes an equal share
// of train.batch_size.
func checkDistributed(ch *checker, d DistributedConfig, device string, batchSize int) {
	ch.between("distributed.nproc_per_node", d.NProcPerNode, 1, maxProcs)
	ch.oneOf("distributed.backend", d.Backend, backends)
	ch.cross(d.Backend != "nccl" || device != "cpu", []string{"distributed.backend", "device"}, "nccl needs a CUDA device (device is cpu): use gloo or auto")
	ch.want(d.Timeout >= time.Second && d.Timeout <= time.Hour, "distributed.timeout", "must be in [1s, 1h] (got %s)", d.Timeout)
	ch.want(d.BucketMB > 0 && d.BucketMB <= maxBucketMB, "distributed.bucket_mb", "must be in (0, %d] (got %v)", maxBucketMB, d.BucketMB)
	ch.between("distributed.nnodes", d.NNodes, 1, maxNodes)
	ch.want(d.NodeRank >= 0 && d.NodeRank < max(d.NNodes, 1), "distributed.node_rank", "must be in [0, distributed.nnodes) = [0, %d) (got %d)", max(d.NNodes, 1), d.NodeRank)
	ch.cross(d.NNodes <= 1 || d.MasterAddr != "", []string{"distributed.master_addr", "distributed.nnodes"}, "required when distributed.nnodes is more than 1 (got %d): the address of node 0, which hosts the rendezvous store", d.NNodes)
	ch.want(!strings.ContainsAny(d.MasterAddr, " \t\n/"), "distributed.master_addr", "must be a host name or an IP address (got %q)", d.MasterAddr)
	ch.between("distributed.master_port", d.MasterPort, 1, 65535)
	ch.want(d.MinNodes >= 0 && d.MinNodes <= max(d.NNodes, 1), "distributed.min_nodes", "must be in [0, distributed.nnodes] = [0, %d] (got %d)", max(d.NNodes, 1), d.MinNodes)
	if d.NNodes > 1 {
		ch.cross(d.NProcPerNode < 1 || batchSize%(d.NNodes*d.NProcPerNode) == 0, []string{"train.batch_size", "distributed.nproc_per_node", "distributed.nnodes"},
			"%d is not divisible by distributed.nnodes %d × distributed.nproc_per_node %d (each process takes an equal share of every batch)", batchSize, d.NNodes, d.NProcPerNode)
	}
	ch.cross(d.NProcPerNode < 1 || batchSize%d.NProcPerNode == 0, []string{"train.batch_size", "distributed.nproc_per_node"},
		"%d is not divisible by distributed.nproc_per_node %d (each process takes an equal share of every batch)", batchSize, d.NProcPerNode)
}

// checkMachines checks that the simulated machines of spottrain run (each a group of
// distributed.nproc_per_node processes, all on this machine) fit one group here.
func checkMachines(ch *checker, machines int, d DistributedConfig, batchSize int) {
	if machines <= 1 || d.NProcPerNode < 1 {
		return
	}
	keys := []string{"interrupts.machines", "distributed.nproc_per_node"}
	ch.cross(d.NNodes <= 1, []string{"interrupts.machines", "distributed.nnodes"},
		"simulated machines all run on this one: not with distributed.nnodes %d", d.NNodes)
	ch.cross(machines*d.NProcPerNode <= maxProcs, keys, "%d × %d processes is more than %d on this machine", machines, d.NProcPerNode, maxProcs)
	ch.cross(batchSize%(machines*d.NProcPerNode) == 0, append([]string{"train.batch_size"}, keys...),
		"%d is not divisible by interrupts.machines %d × distributed.nproc_per_node %d (each process takes an equal share of every batch)",
		batchSize, machines, d.NProcPerNode)
}

func checkModel(ch *checker, m ModelConfig) {
	ch.oneOf("model.kind", m.Kind, modelKinds)
	ch.kindSection("model.lstm", m.LSTM != nil, m.Kind)
	ch.kindSection("model.resnet", m.ResNet != nil, m.Kind)
	if l := m.LSTM; l != nil {
		ch.between("model.lstm.hidden_size", l.HiddenSize, 1, 4096)
		ch.between("model.lstm.num_layers", l.NumLayers, 1, 16)
		ch.want(l.Dropout >= 0 && l.Dropout < 1, "model.lstm.dropout", "must be in [0, 1) (got %v)", l.Dropout)
		ch.oneOf("model.lstm.target", l.Target, solar.Targets)
		ch.oneOf("model.lstm.loss", l.Loss, lstmLosses)
		ch.want(l.HuberDelta > 0 && l.HuberDelta <= 1, "model.lstm.huber_delta", "must be in (0, 1], a fraction of capacity (got %v)", l.HuberDelta)
	}
	if r := m.ResNet; r != nil {
		ch.want(slices.Contains(resnetDepths, r.Depth), "model.resnet.depth", "must be 18, 34, 50 or 101 (got %d)", r.Depth)
		ch.want(r.Width > 0 && r.Width <= 16, "model.resnet.width", "must be in (0, 16] (got %v)", r.Width)
		ch.oneOf("model.resnet.stem", r.Stem, stems)
	}
}

func checkData(ch *checker, d DataConfig, kind string) {
	ch.oneOf("data.source", d.Source, dataSources)
	if kind == KindResNet {
		ch.cross(slices.Contains(imageSources, d.Source), []string{"data.source", "model.kind"},
			"model.kind resnet trains on %s (got %q)", strings.Join(imageSources, ", "), d.Source)
	} else {
		ch.cross(slices.Contains(solarSources, d.Source), []string{"data.source", "model.kind"},
			"model.kind %s trains on %s (got %q)", kind, strings.Join(solarSources, ", "), d.Source)
	}
	ch.cross(strings.HasPrefix(d.Source, "synthetic") || d.Path != "", []string{"data.path", "data.source"}, "required when data.source is %s", d.Source)
	ch.want(d.Digest == "" || digestRE.MatchString(d.Digest), "data.digest", "must be a SHA-256 in 64 lowercase hex digits (got %q)", d.Digest)
	ch.cross(d.Digest == "" || d.Path != "", []string{"data.digest", "data.path"}, "needs data.path: the digest is that of the data file")
	ch.kindSection("data.lstm", d.LSTM != nil, kind)
	ch.kindSection("data.resnet", d.ResNet != nil, kind)
	if l := d.LSTM; l != nil {
		checkLSTMData(ch, *l, d.Source)
	}
	if r := d.ResNet; r != nil {
		ch.atLeast("data.resnet.workers", r.Workers, 0)
		ch.between("data.resnet.synthetic_samples", r.SyntheticSamples, 10, 10_000_000)
		ch.between("data.resnet.classes", r.Classes, 2, 1000)
	}
}

func checkLSTMData(ch *checker, d LSTMData, source string) {
	if source == "csv" {
		ch.want(d.TimestampColumn != "", "data.lstm.timestamp_column", "must not be empty for csv")
		ch.want(d.PowerColumn != "", "data.lstm.power_column", "must not be empty for csv")
	}
	ch.oneOf("data.lstm.power_unit", d.PowerUnit, powerUnits)
	ch.want(math.Abs(d.Latitude) <= 90, "data.lstm.latitude", "must be in [-90, 90] (got %v)", d.Latitude)
	ch.want(math.Abs(d.Longitude) <= 180, "data.lstm.longitude", "must be in [-180, 180] (got %v)", d.Longitude)
	if source == "synthetic" {
		ch.want(d.CapacityKW > 0, "data.lstm.capacity_kw", "must be > 0 for synthetic data (got %v)", d.CapacityKW)
		ch.want(d.Start.Equal(d.Start.Truncate(time.Hour)), "data.lstm.start", "must be on the hour for synthetic data (got %s)", d.Start.Format(time.RFC3339Nano))
	} else {
		ch.want(d.CapacityKW >= 0, "data.lstm.capacity_kw", "must be >= 0, 0 = the maximum observed (got %v)", d.CapacityKW)
	}
	ch.atLeast("data.lstm.days", d.Days, 7)
	ch.atMost("data.lstm.days", d.Days, maxSynthDays)
	ch.want(d.CloudPersistence >= 0 && d.CloudPersistence < 1, "data.lstm.cloud_persistence", "must be in [0, 1) (got %v)", d.CloudPersistence)
	ch.want(d.Noise >= 0 && d.Noise <= 0.5, "data.lstm.noise", "must be in [0, 0.5] (got %v)", d.Noise)
	ch.atLeast("data.lstm.max_gap_fill_hours", d.MaxGapFillHours, 0)
	ch.between("data.lstm.lookback_hours", d.LookbackHours, 24, 720)
	ch.between("data.lstm.horizon_hours", d.HorizonHours, 1, 24)
	ch.want(d.TrainFrac > 0 && d.TrainFrac < 1, "data.lstm.train_frac", "must be in (0, 1) (got %v)", d.TrainFrac)
	ch.want(d.ValFrac > 0 && d.ValFrac < 1, "data.lstm.val_frac", "must be in (0, 1) (got %v)", d.ValFrac)
	ch.cross(d.TrainFrac+d.ValFrac < 1, []string{"data.lstm.val_frac", "data.lstm.train_frac"},
		"data.lstm.train_frac + data.lstm.val_frac must be < 1, leaving a test split (got %v + %v)", d.TrainFrac, d.ValFrac)
	if source == "synthetic" && ch.first == nil {
		need := solar.MinHours(solar.WindowConfig{Lookback: d.LookbackHours, Horizon: d.HorizonHours, TrainFrac: d.TrainFrac, ValFrac: d.ValFrac})
		ch.cross(d.Days*24 >= need, []string{"data.lstm.days", "data.lstm.lookback_hours", "data.lstm.horizon_hours"},
			"must be >= %d: each split (data.lstm.train_frac, data.lstm.val_frac, the rest) needs data.lstm.lookback_hours + "+
				"data.lstm.horizon_hours (%d + %d) hours (got %d days)", (need+23)/24, d.LookbackHours, d.HorizonHours, d.Days)
	}
}

func checkTrain(ch *checker, t TrainConfig, kind, device string) {
	ch.atLeast("train.epochs", t.Epochs, 1)
	ch.atMost("train.epochs", t.Epochs, maxEpochs)
	ch.atLeast("train.batch_size", t.BatchSize, 1)
	ch.atLeast("train.max_steps", t.MaxSteps, 0)
	ch.atLeast("train.log_every", t.LogEvery, 1)
	ch.want(t.GradClip >= 0, "train.grad_clip", "must be >= 0 (got %v)", t.GradClip)
	ch.atLeast("train.eval_batch_size", t.EvalBatchSize, 1)
	ch.oneOf("train.precision", t.Precision, precisions)
	ch.cross(t.Precision == "fp32" || device != "cpu", []string{"train.precision", "device"}, "bf16 needs a CUDA device (device is cpu)")
	ch.kindSection("train.resnet", t.ResNet != nil, kind)
	if r := t.ResNet; r != nil {
		ch.want(r.LabelSmoothing >= 0 && r.LabelSmoothing < 1, "train.resnet.label_smoothing", "must be in [0, 1) (got %v)", r.LabelSmoothing)
	}
}

func checkOptimizer(ch *checker, o OptimizerConfig) {
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
}

func checkSchedule(ch *checker, s ScheduleConfig, lr float64) {
	ch.oneOf("schedule.name", s.Name, schedules)
	ch.atLeast("schedule.warmup_steps", s.WarmupSteps, 0)
	ch.atLeast("schedule.step_size", s.StepSize, 1)
	ch.want(s.Gamma > 0 && s.Gamma <= 1, "schedule.gamma", "must be in (0, 1] (got %v)", s.Gamma)
	ch.want(s.MinLR >= 0, "schedule.min_lr", "must be >= 0 (got %v)", s.MinLR)
	ch.cross(s.MinLR < lr, []string{"schedule.min_lr", "optimizer.lr"},
		"must be < optimizer.lr (got %v, lr %v)", s.MinLR, lr)
}

// checkCheckpoint checks the checkpoint section: the only place where the settings of the
// checkpoint strategies are validated (checkpoint.NewStrategy trusts them).
func checkCheckpoint(ch *checker, k CheckpointConfig, runDir string) {
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
		} else if rel := filepath.ToSlash(filepath.Clean(runDir)); rel == "." || rel == "/" || strings.HasPrefix(rel, "../") || rel == ".." {
			ch.cross(false, []string{"run_dir", "checkpoint.remote"}, "the run's copy goes under checkpoint.remote at the path of run_dir, which must name a directory inside the current one or an absolute one (got %q)", runDir)
		}
	}
}
