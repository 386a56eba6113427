package train

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/torch"
)

// Payload files of a checkpoint.
const (
	ModelFile = "model.pt"   // parameters and buffers (torch serialization)
	OptimFile = "optim.pt"   // optimizer state (torch serialization)
	RNGFile   = "rng.pt"     // generator states (torch serialization)
	SpecFile  = "model.json" // the ModelSpec, JSON
	// PrepFile is a forecaster's preprocessing (solar.Preprocessing, JSON): what turns a PV
	// history into its inputs and its outputs into kW. Image models have none.
	PrepFile = "preprocessing.json"
	// ConfigFile is the config the checkpoint was made under (configs.Config.YAML): a resume
	// under another config diffs the two.
	ConfigFile = "config.yaml"
)

// checkpointer takes checkpoints in two phases: a snapshot, a copy of model, optimizer and RNG
// state into host memory (the only part that blocks training), then a persist that serializes it
// and commits it to the store, in a background goroutine for periodic and milestone checkpoints.
// At most one persist is in flight: the next checkpoint, an emergency one included, waits for it
// first.
type checkpointer struct {
	store    *checkpoint.Store
	events   *events.Log
	net      *torch.Net
	opt      *torch.Optimizer
	spec     ModelSpec
	prep     []byte // PrepFile's contents; nil: none
	log      io.Writer
	strategy checkpoint.Strategy // when periodic (and milestone) checkpoints are due
	config   []byte              // the run's config as YAML, saved in every checkpoint
	metric   string              // of the validation metrics, the one the strategy watches
	manifest checkpoint.Manifest // the fields that do not change during a run
	group    *group              // the other ranks send their RNG state at each Save; nil: alone

	mirror   *checkpoint.Mirror // uploads each commit; nil: no remote
	uploadMu sync.Mutex
	uploaded checkpoint.Upload // the last upload's outcome

	computeBefore float64    // training seconds of earlier incarnations
	started       time.Time  // when this incarnation's training began
	lastStep      int        // step of the newest checkpoint (saved or being saved)
	persisting    chan error // the persist in flight, nil when none
}

// Due implements Checkpointer.
func (c *checkpointer) Due(step int) bool {
	return step != c.lastStep && c.strategy.Due(step, time.Now())
}

// Improved implements Checkpointer.
func (c *checkpointer) Improved(step int, val Metrics) bool {
	v, ok := val[c.metric]
	return ok && c.strategy.Validated(step, v)
}

// Save implements Checkpointer. An emergency checkpoint of the step of the newest checkpoint (the
// one resumed from, or one saved since whose persist succeeds) writes nothing: that one holds the
// same state. In a group, every rank's RNG state is gathered first (every rank calls Save at the
// same step), and the checkpoint holds them all (rng.pt, rng.1.pt, ...).
func (c *checkpointer) Save(pos Position, reason codes.CheckpointReason, metrics Metrics) error {
	rngs, err := c.group.gatherRNG()
	if err != nil {
		return err
	}
	if c.wait() == nil && reason == codes.Emergency && pos.Step == c.lastStep {
		fmt.Fprintf(c.log, "step %d is checkpointed already\n", pos.Step)
		return nil
	}
	begin := time.Now()
	snap, err := torch.TakeSnapshot(c.net, c.opt)
	if err != nil {
		return err
	}
	blocking := time.Since(begin)
	c.strategy.Checkpointed(pos.Step, time.Now(), blocking)

	m := c.manifest
	m.Epoch, m.Step, m.Batch = pos.Epoch, int64(pos.Step), pos.Batch
	m.Loss = pos.LossSum / float64(max(pos.Batch, 1))
	m.Metrics = metrics
	m.ComputeSeconds = c.computeSeconds()
	m.Reason = reason
	m.Time = time.Now().UTC()
	if w := c.group.world(); w > 1 {
		m.World = w
	}
	c.lastStep = pos.Step
	c.events.Emit(events.CheckpointBegin{Step: pos.Step, Reason: reason})

	if reason == codes.Emergency || reason == codes.Final {
		return c.persist(snap, m, rngs, blocking)
	}
	done := make(chan error, 1)
	c.persisting = done
	go func() { done <- c.persist(snap, m, rngs, blocking) }()
	return nil
}

// persist serializes snap and commits it, with the RNG states of the group's other ranks (rngs[r]
// for rank r >= 1), as the checkpoint m describes; blocking is how long the snapshot held up
// training. It closes snap.
func (c *checkpointer) persist(snap *torch.Snapshot, m checkpoint.Manifest, rngs [][]byte, blocking time.Duration) error {
	defer snap.Close()
	start := time.Now()
	spec, err := json.Marshal(c.spec)
	if err != nil {
		return err
	}
	// The model and the optimizer state serialize in parallel: each is about half the bytes.
	var model, optim []byte
	var modelErr error
	serialized := make(chan struct{})
	go func() {
		defer close(serialized)
		model, modelErr = snap.Model()
	}()
	optim, err = snap.Optimizer()
	<-serialized
	if err = errors.Join(modelErr, err); err != nil {
		return err
	}
	rng, err := snap.RNG()
	if err != nil {
		return err
	}
	p, err := c.store.Begin(m.Step)
	if err != nil {
		return err
	}
	defer p.Cleanup()
	files := []struct {
		name string
		data []byte
	}{{ModelFile, model}, {OptimFile, optim}, {RNGFile, rng}, {SpecFile, spec}, {ConfigFile, c.config}}
	if c.prep != nil {
		files = append(files, struct {
			name string
			data []byte
		}{PrepFile, c.prep})
	}
	for r := 1; r < len(rngs); r++ {
		files = append(files, struct {
			name string
			data []byte
		}{rngFile(r), rngs[r]})
	}
	for _, f := range files {
		if err := p.Write(f.name, f.data); err != nil {
			return err
		}
	}
	ck, err := p.Commit(m)
	if errors.Is(err, checkpoint.ErrRetention) {
		// The checkpoint is durable; only removing older ones failed.
		fmt.Fprintf(c.log, "warning: %v\n", err)
	} else if err != nil {
		return err
	}
	if c.mirror != nil {
		c.mirror.Push(ck)
	}
	commit := events.CheckpointCommit{
		Step: int(m.Step), Reason: m.Reason, Dir: ck.Dir, Bytes: len(model) + len(optim) + len(rng),
		BlockingMS: blocking.Seconds() * 1000, PersistMS: time.Since(start).Seconds() * 1000,
	}
	if m.Reason == codes.Emergency {
		c.events.Emit(events.EmergencyCheckpoint(commit))
	}
	return c.events.Emit(commit)
}

// computeSeconds returns the training time of the run so far, all incarnations together.
func (c *checkpointer) computeSeconds() float64 {
	return c.computeBefore + time.Since(c.started).Seconds()
}

// wait joins the persist in flight, if any, and returns its error. Its failure does not stop
// training: the previous checkpoint is intact, and it is reported here; lastStep no longer names
// a checkpoint then.
func (c *checkpointer) wait() error {
	if c.persisting == nil {
		return nil
	}
	err := <-c.persisting
	c.persisting = nil
	if err != nil {
		c.lastStep = -1
		fmt.Fprintf(c.log, "warning: periodic checkpoint failed, training goes on from the previous one: %v\n", err)
		c.events.Emit(events.CheckpointFailed{Error: err.Error()})
	}
	return err
}

// restore loads a checkpoint's model, optimizer and RNG state. Its error names the file that did
// not load, not the checkpoint; after one, net and opt may hold part of the checkpoint's state.
func restore(ck *checkpoint.Checkpoint, net *torch.Net, opt *torch.Optimizer) error {
	for _, f := range []struct {
		name string
		load func([]byte) error
	}{{ModelFile, net.LoadState}, {OptimFile, opt.LoadState}, {RNGFile, torch.LoadRNG}} {
		data, err := ck.ReadFile(f.name)
		if err == nil {
			err = f.load(data)
		}
		if err != nil {
			return fmt.Errorf("%s does not load: %w", f.name, err)
		}
	}
	return nil
}

// CheckLoads loads the checkpoint as a resume does, on the CPU: it builds the network that its
// model.json describes and the optimizer that its config.yaml names, and loads model.pt, optim.pt
// and rng.pt into them (rng.pt into this process's generators, which it changes). nil means a
// trainer can take the run up from it (if the config it resumes under permits); an error names the
// file that does not load, and why.
func CheckLoads(ck *checkpoint.Checkpoint) error {
	doc, err := ck.ReadFile(SpecFile)
	if err != nil {
		return err
	}
	spec, err := ParseModelSpec(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", SpecFile, err)
	}
	net, err := spec.Build(torch.CPU)
	if err != nil {
		return fmt.Errorf("%s: %w", SpecFile, err)
	}
	defer net.Close()
	if doc, err = ck.ReadFile(ConfigFile); err != nil {
		return err
	}
	cfg, err := configs.ParseSaved(filepath.Join(ck.Dir, ConfigFile), doc)
	if err != nil {
		return err
	}
	opt, err := torch.NewOptimizer(net, optimizerConfig(cfg))
	if err != nil {
		return fmt.Errorf("%s: %w", ConfigFile, err)
	}
	defer opt.Close()
	return restore(ck, net, opt)
}

// newRunID returns a random identifier for a new run.
func newRunID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
