package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"spottrain/codes"
	"spottrain/torch"
)

// rngFile is the payload file of rank's RNG state: rank 0's is RNGFile, as a process alone's.
func rngFile(rank int) string {
	if rank == 0 {
		return RNGFile
	}
	return fmt.Sprintf("rng.%d.pt", rank)
}

// start is what rank 0 tells the other ranks before training: where the run stands, whether its
// state follows (the checkpoint's files) or the fresh weights do, or why the run does not start.
type start struct {
	Err     string   `json:"err,omitempty"`
	Code    int      `json:"code,omitempty"` // the exit status of Err
	From    Position `json:"from"`
	Resumed bool     `json:"resumed"`
}

// announce tells the group how the run starts, once rank 0 has opened the run dir and restored
// the state (err nil), or why it does not (err: every rank then exits with err's status). Then
// the state follows: the checkpoint's model, optimizer and RNG files (each rank takes its own
// RNG state) or, on a fresh start, the weights. It returns err, or the failure to reach the
// group. Alone, it returns err.
func (j *job) announce(err error) error {
	if j.group == nil {
		return err
	}
	var files [][]byte
	if err == nil && j.resumed != nil {
		files, err = j.stateFiles()
	}
	msg := start{From: j.from, Resumed: j.resumed != nil}
	if err != nil {
		msg.Err, msg.Code = err.Error(), ExitCode(err)
	}
	doc, merr := json.Marshal(msg)
	if merr != nil {
		return errors.Join(err, merr)
	}
	if _, aerr := j.group.g.Add(startedKey, 1); aerr != nil {
		return errors.Join(err, j.group.lost("the start's word", aerr))
	}
	if _, berr := j.group.g.Broadcast(0, doc); berr != nil || err != nil {
		return errors.Join(err, j.group.lost("the start's broadcast", berr))
	}
	if j.resumed == nil {
		return j.group.lost("the weights' broadcast", j.group.g.BroadcastNet(j.net, 0))
	}
	for _, f := range files {
		if _, err := j.group.g.Broadcast(0, f); err != nil {
			return j.group.lost("the state's broadcast", err)
		}
	}
	return nil
}

// stateFiles reads the files of the restored checkpoint that the other ranks load: the model,
// the optimizer, then the RNG state of each rank from 1 on (empty for a rank the checkpoint has
// none of: it was made by a smaller group).
func (j *job) stateFiles() ([][]byte, error) {
	names := []string{ModelFile, OptimFile}
	for r := 1; r < j.group.world(); r++ {
		names = append(names, rngFile(r))
	}
	files := make([][]byte, len(names))
	for i, name := range names {
		data, err := j.resumed.ReadFile(name)
		if err != nil && i < 2 {
			return nil, err
		}
		files[i] = data
	}
	return files, nil
}

// follow is Run for a rank other than 0: it gets the state from rank 0, trains its share of
// every batch with the group, takes part in the checkpoints (its RNG state) and the evaluations,
// and stops with the group. It writes nothing: the run dir is rank 0's, and so is the log; its
// own lines go nowhere but its errors, which the caller reports.
func (j *job) follow(ctx context.Context) (*Summary, error) {
	j.log = io.Discard
	if err := j.receiveStart(); err != nil {
		return nil, err
	}
	j.sum = &Summary{Name: j.cfg.Name, Device: j.dev, Threads: torch.NumThreads(), Params: j.net.NumParams(),
		Samples: j.work.Samples(), RunDir: j.cfg.RunDir}
	err := j.trainAll(ctx)
	if err == nil {
		err = j.complete()
	}
	return j.sum, err
}

// startedKey is the counter in the group's store that rank 0 adds to once it knows how the run
// starts: the other ranks wait for it as long as rank 0 is alive, however long the run dir takes
// to open (a checkpoint downloaded from object storage), before the broadcast of the start, which
// fails after distributed.timeout.
const startedKey = "started"

// awaitLeader waits for rank 0's word on the start, as long as its heartbeat moves.
func (j *job) awaitLeader() error {
	return j.group.awaitLeader("waiting for rank 0 to start the run", func() (int64, error) {
		return j.group.g.Add(startedKey, 0)
	})
}

// awaitLeader waits until word, a counter in the store, is above 0, as long as rank 0's
// heartbeat moves (checked every 5 s): rank 0's word may take longer than the group's timeout.
// op names what the rank waits for in the *PeerLostError of a rank 0 gone.
func (p *group) awaitLeader(op string, word func() (int64, error)) error {
	checked := time.Now()
	for {
		n, err := word()
		if err != nil {
			return p.lost(op, err)
		}
		if n > 0 {
			return nil
		}
		if time.Since(checked) > 5*time.Second {
			missing, err := p.g.Missing(1200 * time.Millisecond)
			if err != nil || slices.Contains(missing, 0) {
				return &PeerLostError{Op: op, World: p.world(), Missing: []int{0}, StoreGone: err != nil, Err: errors.New("no heartbeat")}
			}
			checked = time.Now()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiveStart is announce's other end: it returns rank 0's error if the run does not start, or
// loads the state rank 0 sends.
func (j *job) receiveStart() error {
	if err := j.awaitLeader(); err != nil {
		return err
	}
	doc, err := j.group.g.Broadcast(0, nil)
	if err != nil {
		return j.group.lost("waiting for rank 0 to start the run", err)
	}
	var msg start
	if err := json.Unmarshal(doc, &msg); err != nil {
		return fmt.Errorf("rank 0's start: %w", err)
	}
	if msg.Err != "" {
		return &errLeader{msg: msg.Err, code: msg.Code}
	}
	j.from = msg.From
	rank := j.group.rank()
	if !msg.Resumed {
		torch.ManualSeed(j.cfg.Seed + uint64(rank)) // dropout masks of its own
		return j.group.lost("the weights' broadcast", j.group.g.BroadcastNet(j.net, 0))
	}
	files := make([][]byte, 1+j.group.world())
	for i := range files {
		if files[i], err = j.group.g.Broadcast(0, nil); err != nil {
			return j.group.lost("the state's broadcast", err)
		}
	}
	if err := j.net.LoadState(files[0]); err != nil {
		return fmt.Errorf("rank 0's %s does not load: %w", ModelFile, err)
	}
	if err := j.optim.LoadState(files[1]); err != nil {
		return fmt.Errorf("rank 0's %s does not load: %w", OptimFile, err)
	}
	if mine := files[1+rank]; len(mine) > 0 {
		return torch.LoadRNG(mine)
	}
	torch.ManualSeed(rankSeed(j.cfg.Seed, rank, j.from.Step)) // a checkpoint of a smaller group
	return nil
}

// rankSeed is the seed of the RNG of a rank that a checkpoint of step has no state of (it was made
// by a smaller group): a function of the run's seed, the rank and the step alone, so a resume
// draws the same dropout masks however often it is repeated, and distinct ones for every rank
// and step (splitmix64's finalizer over the three).
func rankSeed(seed uint64, rank, step int) uint64 {
	z := seed ^ uint64(rank)<<40 ^ uint64(step)
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// follower is the Checkpointer of a rank other than 0: rank 0 decides when to checkpoint (the
// loop takes its decisions) and writes the checkpoint; a follower sends it its RNG state.
type follower struct{ group *group }

func (follower) Due(int) bool               { return false }
func (follower) Improved(int, Metrics) bool { return false }
func (f follower) Save(Position, codes.CheckpointReason, Metrics) error {
	_, err := f.group.gatherRNG()
	return err
}

// gatherRNG sends this rank's RNG state to rank 0, which gets every rank's, in rank order; nil
// elsewhere, and alone.
func (p *group) gatherRNG() ([][]byte, error) {
	if p == nil {
		return nil, nil
	}
	rng, err := torch.RNGState() // on failure, an empty part: the gather must go on for the others
	parts, gerr := p.g.Gather(0, rng)
	return parts, errors.Join(err, p.lost("the checkpoint's gather of RNG states", gerr))
}
