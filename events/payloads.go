package events

import (
	"reflect"

	"spottrain/codes"
)

// Payload is the fields of an event of one type: a struct whose exported fields are the event's
// fields, named by their json tags. A field is required unless its tag says omitempty (written
// only when not zero) or it has the tag events:"optional" (always written, but lines of older
// logs may lack it). Emit writes a Payload; Read decodes the payload of each known type. Other
// types may implement Payload too: their events are written and read the same way, and Read
// leaves their fields to Event.Decode.
type Payload interface {
	EventType() string // the "type" of its events
}

// The trainer's events.

// RunStart: a trainer process began the run, or took it up.
type RunStart struct {
	ConfigHash   string `json:"config_hash"`                     // hex
	TrainingHash string `json:"training_hash" events:"optional"` // configs.Config.TrainingHash
	Device       string `json:"device"`
	PID          int    `json:"pid"`
	Libtorch     string `json:"libtorch"`
	TotalSteps   int    `json:"total_steps" events:"optional"`
	// World is the number of processes of the group that trains (rank 0 writes the log); 0 or
	// absent: one process.
	World int `json:"world,omitempty" events:"optional"`
}

// GroupStats: a group's training (this incarnation's part of it) is over: what its gradient sums
// cost. ReduceMS is the mean time per step of the sums inside the step (bucketing, the
// allreduce, the copies back); BareMS the time of one bare allreduce of the same bytes, measured
// right after: their ratio is the collective's efficiency inside the step.
type GroupStats struct {
	World    int     `json:"world"`
	Backend  string  `json:"backend"`
	Steps    int64   `json:"steps"`
	Bytes    int64   `json:"bytes"` // summed per step
	ReduceMS float64 `json:"reduce_ms"`
	BareMS   float64 `json:"bare_ms"`
}

// Regroup: an elastic group (distributed.min_nodes) formed its generation Generation without a
// restart: from FromWorld ranks to ToWorld, the ranks Lost gone (launch ranks: RANK as their
// launchers set it) and the ranks Joined taken in. Training had reached step AtStep; it went on
// from the checkpoint in Dir, of step Step (AtStep - Step steps are done again), TookMS after the
// group's loss was noticed (or the checkpoint that took the new ranks in was taken).
type Regroup struct {
	Generation int     `json:"generation"`
	FromWorld  int     `json:"from_world"`
	ToWorld    int     `json:"to_world"`
	Lost       []int   `json:"lost,omitempty" events:"optional"`
	Joined     []int   `json:"joined,omitempty" events:"optional"`
	AtStep     int     `json:"at_step"`
	Step       int     `json:"step"`
	Epoch      int     `json:"epoch"`
	Batch      int     `json:"batch"` // the next batch to run
	Dir        string  `json:"dir"`
	TookMS     float64 `json:"took_ms"`
}

// Resume: the trainer restored the checkpoint in Dir.
type Resume struct {
	Step  int    `json:"step"`
	Epoch int    `json:"epoch"`
	Batch int    `json:"batch"` // the next batch to run
	Dir   string `json:"dir"`
}

// CheckpointBegin: the trainer took a snapshot for a checkpoint.
type CheckpointBegin struct {
	Step   int                    `json:"step"`
	Reason codes.CheckpointReason `json:"reason"`
}

// CheckpointCommit: a checkpoint is committed in Dir.
type CheckpointCommit struct {
	Step       int                    `json:"step"`
	Reason     codes.CheckpointReason `json:"reason"`
	Dir        string                 `json:"dir"`
	Bytes      int                    `json:"bytes"`       // payload
	BlockingMS float64                `json:"blocking_ms"` // the training loop was blocked
	PersistMS  float64                `json:"persist_ms"`  // the background write
}

// CheckpointFailed: a checkpoint could not be saved; training went on.
type CheckpointFailed struct {
	Error string `json:"error"`
}

// CheckpointInvalid: the checkpoint in Dir was skipped.
type CheckpointInvalid struct {
	Dir    string `json:"dir"`
	Reason string `json:"reason"` // why
}

// SignalReceived: a notice reached the trainer after step Step.
type SignalReceived struct {
	// Signal is "terminated", "interrupt", or a cloud's notice from its metadata server, e.g.
	// "GCP preemption notice".
	Signal string  `json:"signal"`
	Step   int     `json:"step" events:"optional"`
	WaitMS float64 `json:"wait_ms" events:"optional"` // from the notice to the end of the step
}

// EmergencyCheckpoint: the checkpoint taken on a notice is committed. The trainer writes the
// fields of its checkpoint_commit; only Step is required.
type EmergencyCheckpoint struct {
	Step       int                    `json:"step"`
	Reason     codes.CheckpointReason `json:"reason" events:"optional"`
	Dir        string                 `json:"dir" events:"optional"`
	Bytes      int                    `json:"bytes" events:"optional"`
	BlockingMS float64                `json:"blocking_ms" events:"optional"`
	PersistMS  float64                `json:"persist_ms" events:"optional"`
}

// EpochEnd: an epoch was evaluated.
type EpochEnd struct {
	Epoch     int                `json:"epoch"` // 0 for the first
	Step      int                `json:"step"`
	TrainLoss float64            `json:"train_loss"`
	Metrics   map[string]float64 `json:"metrics"` // validation metrics by name, all finite
	// Absent names the metrics the evaluation left out, each with the reason (a score undefined on
	// the data, such as a skill against a persistence RMSE of 0); nil: none.
	Absent map[string]string `json:"absent,omitempty"`
}

// Progress: a log line's worth of training.
type Progress struct {
	Step  int     `json:"step"`
	Epoch int     `json:"epoch"`
	Loss  float64 `json:"loss"`
}

// Exit: the trainer process ends with status Code (codes.ExitDone, ...).
type Exit struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"` // "done", or the error
	Step   int    `json:"step"`   // steps done; 0 if it stopped before training
	// Signal and SignalToExitMS are set when a notice stopped the trainer.
	Signal         string `json:"signal,omitempty"`
	SignalToExitMS *int64 `json:"signal_to_exit_ms,omitempty"`
	// PeerLost is set when the process left its group because a peer was gone (code 75): the
	// ranks LostRanks stopped responding (none named when the rendezvous store's host is gone).
	PeerLost  bool  `json:"peer_lost,omitempty"`
	LostRanks []int `json:"lost_ranks,omitempty"`
}

// CheckpointUpload: the checkpoint of Step is in object storage.
type CheckpointUpload struct {
	Step     int64   `json:"step"`
	Bytes    int64   `json:"bytes"` // payload sent; 0 if the remote had it
	UploadMS float64 `json:"upload_ms"`
	// Pruned and Superseded are the steps the upload removed from the remote.
	Pruned     []int64 `json:"pruned" events:"optional"`
	Superseded []int64 `json:"superseded" events:"optional"`
	Warning    string  `json:"warning,omitempty"` // a failure after the upload
}

// CheckpointUploadFailed: the upload of Step failed; the remote keeps what it had.
type CheckpointUploadFailed struct {
	Step  int64  `json:"step"`
	Error string `json:"error"`
}

// CheckpointDownload: a run dir without a newer checkpoint took the remote's newest valid one.
type CheckpointDownload struct {
	Step       int64   `json:"step"`
	URL        string  `json:"url"`
	Bytes      int64   `json:"bytes"`
	DownloadMS float64 `json:"download_ms"`
}

// The runner's events (incarnation 0).

// RunnerStart: a runner took the run up. No field is required.
type RunnerStart struct {
	Name          string  `json:"name" events:"optional"`
	Index         int     `json:"index" events:"optional"`
	Pattern       string  `json:"pattern" events:"optional"`
	Seed          uint64  `json:"seed" events:"optional"`
	TimeScale     float64 `json:"time_scale" events:"optional"`
	NoNoticeShare float64 `json:"no_notice_share" events:"optional"`
	PID           int     `json:"pid" events:"optional"`
	// Machines is the size of the simulated job (interrupts.machines); 0 in logs from before it
	// existed: one machine.
	Machines int `json:"machines,omitempty" events:"optional"`
}

// InterruptSent: the runner signalled its child.
type InterruptSent struct {
	Kind    codes.InterruptKind   `json:"kind"`
	Reason  codes.InterruptReason `json:"reason"`
	PID     int                   `json:"pid"`
	AtSpotS float64               `json:"at_spot_s,omitempty"` // when the schedule said so, in spot time
	// Machine is the simulated machine of the job that the interrupt hit (interrupts.machines;
	// 0 for a job of one machine, and in logs from before machines existed).
	Machine int `json:"machine" events:"optional"`
}

// SignalFailed: the runner could not signal its child.
type SignalFailed struct {
	PID    int    `json:"pid"`
	Signal string `json:"signal"`
	Error  string `json:"error"`
}

// ChildExit: a trainer process the runner started ended.
type ChildExit struct {
	PID    int    `json:"pid"`
	Code   int    `json:"code"`   // -1 when killed by a signal
	Signal string `json:"signal"` // "" if none
	Caused bool   `json:"caused"` // the runner signalled this child
}

// Restart: the runner starts the trainer again after DelayS seconds of spot time without a VM
// (it waits them out, scaled).
type Restart struct {
	Attempt int     `json:"attempt"` // 1 for the first restart
	DelayS  float64 `json:"delay_s"`
}

// ChildStart: a trainer process began.
type ChildStart struct {
	Attempt int `json:"attempt"` // 0 for the first start
	PID     int `json:"pid"`
}

func (RunStart) EventType() string               { return "run_start" }
func (GroupStats) EventType() string             { return "group_stats" }
func (Resume) EventType() string                 { return "resume" }
func (Regroup) EventType() string                { return "regroup" }
func (CheckpointBegin) EventType() string        { return "checkpoint_begin" }
func (CheckpointCommit) EventType() string       { return "checkpoint_commit" }
func (CheckpointFailed) EventType() string       { return "checkpoint_failed" }
func (CheckpointInvalid) EventType() string      { return "checkpoint_invalid" }
func (SignalReceived) EventType() string         { return "signal_received" }
func (EmergencyCheckpoint) EventType() string    { return "emergency_checkpoint" }
func (EpochEnd) EventType() string               { return "epoch_end" }
func (Progress) EventType() string               { return "progress" }
func (Exit) EventType() string                   { return "exit" }
func (CheckpointUpload) EventType() string       { return "checkpoint_upload" }
func (CheckpointUploadFailed) EventType() string { return "checkpoint_upload_failed" }
func (CheckpointDownload) EventType() string     { return "checkpoint_download" }
func (RunnerStart) EventType() string            { return "runner_start" }
func (InterruptSent) EventType() string          { return "interrupt_sent" }
func (SignalFailed) EventType() string           { return "signal_failed" }
func (ChildExit) EventType() string              { return "child_exit" }
func (Restart) EventType() string                { return "restart" }
func (ChildStart) EventType() string             { return "child_start" }

// known maps the type of each payload above to its struct.
var known = map[string]reflect.Type{}

func init() {
	for _, p := range []Payload{
		RunStart{}, Resume{}, CheckpointBegin{}, CheckpointCommit{}, CheckpointFailed{}, CheckpointInvalid{},
		SignalReceived{}, EmergencyCheckpoint{}, EpochEnd{}, Progress{}, Exit{}, CheckpointUpload{},
		CheckpointUploadFailed{}, CheckpointDownload{}, RunnerStart{}, InterruptSent{}, SignalFailed{},
		ChildExit{}, Restart{}, ChildStart{}, GroupStats{}, Regroup{},
	} {
		known[p.EventType()] = reflect.TypeOf(p)
	}
}

// syncedTypes are the types fsynced before Emit returns.
var syncedTypes = map[string]bool{
	CheckpointCommit{}.EventType(): true, EmergencyCheckpoint{}.EventType(): true,
	Exit{}.EventType(): true, ChildExit{}.EventType(): true,
}
