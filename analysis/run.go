// Package analysis reads what runs did from their run directories (events.jsonl, metrics.json,
// config.yaml, checkpoints) and judges them: Verify checks that a run interrupted any number of
// times is sound; Measure says what it cost (billed, lost and overhead time, in spot time);
// NewStudy groups runs by experiment, prices them and compares them with their on-demand
// baselines (savings, break-even interruption rate, 95% confidence intervals); WriteReport writes
// the figures, CSV files and report.md of a study.
//
// It trusts only what the files say. A run's trainer processes (incarnations 1, 2, ...) and the
// runner that supervised them (incarnation 0) write one event log; ReadRun splits it into
// incarnations in the order they ran. A trainer may be a data-parallel group of processes (its
// run_start's world), whose rank 0 writes the events: it bills a GPU-hour per process and hour,
// and a group that lost a peer saved nothing, as a killed trainer.
package analysis

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"spottrain/codes"
	"spottrain/events"
)

// MetricsFile is the final metrics a completed run writes in its run directory.
const MetricsFile = "metrics.json"

// Commit is a checkpoint an incarnation committed (or began to).
type Commit struct {
	Step   int
	Reason codes.CheckpointReason
	Dir    string
}

// Incarnation is one trainer process of a run, as its events tell.
type Incarnation struct {
	N          int       // 1, 2, ...
	Start, End time.Time // its first and last event
	PID        int
	TotalSteps int // of the whole run, as it computed them
	// ResumeStep is the step it resumed at (0: it started afresh), from ResumeDir.
	ResumeStep int
	ResumeDir  string
	Resumed    bool
	LastStep   int // the largest step any of its events names
	// Exit is its exit status; -1 when it has no exit event (it was killed).
	Exit       int
	ExitReason string
	// PeerLost reports that it exited 75 because a peer of its group was gone (a rank killed,
	// frozen or its machine lost): like a kill, it saved nothing on the way out.
	PeerLost  bool
	World     int      // the processes of its group (run_start's world): 1 for a lone trainer
	Emergency bool     // it wrote an emergency checkpoint
	Trained   bool     // it logged training progress or an epoch's end
	Begun     []int    // steps of the checkpoints it began
	Commits   []Commit // checkpoints it committed, in order
	Invalid   []string // checkpoints it found invalid ("dir: reason")
	// Regroups are the generations its elastic group formed without a restart, in order: each
	// went on from a committed checkpoint (Step), back from the step it had reached (AtStep).
	Regroups []events.Regroup
}

// Worlds returns the sizes of the incarnation's group, in order: at its start, then after each
// regroup.
func (in *Incarnation) Worlds() []int {
	out := []int{in.World}
	for _, rg := range in.Regroups {
		out = append(out, max(rg.ToWorld, 1))
	}
	return out
}

// finalWorld is the size of the incarnation's group at its end.
func (in *Incarnation) finalWorld() int {
	w := in.Worlds()
	return w[len(w)-1]
}

// appendWorlds appends the sizes of in's group to worlds, but for repeats.
func appendWorlds(worlds []int, in *Incarnation) []int {
	for _, w := range in.Worlds() {
		if len(worlds) == 0 || worlds[len(worlds)-1] != w {
			worlds = append(worlds, w)
		}
	}
	return worlds
}

// RegroupRedo is the number of steps the incarnation did twice because its group went back to a
// checkpoint when it lost ranks.
func (in *Incarnation) RegroupRedo() int {
	n := 0
	for _, rg := range in.Regroups {
		n += max(rg.AtStep-rg.Step, 0)
	}
	return n
}

// Killed reports whether the incarnation died without exiting (SIGKILL, a crash).
func (in *Incarnation) Killed() bool { return in.Exit == -1 }

// LostWork reports whether the incarnation ended without saving its work: it was killed, or its
// group lost a peer.
func (in *Incarnation) LostWork() bool { return in.Killed() || in.PeerLost }

// idle reports whether the incarnation was killed before it resumed or did any step: it took
// nothing over, so the next one takes over from the one before it.
func (in *Incarnation) idle() bool {
	return in.Killed() && !in.Resumed && in.LastStep == 0 && len(in.Begun) == 0 && len(in.Commits) == 0
}

// stoppedEarly reports whether a notice stopped the incarnation before it restored a checkpoint
// or trained (its exit names the newest checkpoint it found, which it left as it was): like an
// idle one, it took nothing over.
func (in *Incarnation) stoppedEarly() bool {
	return in.Exit == codes.ExitPreempted && !in.PeerLost && !in.Resumed && !in.Trained && len(in.Begun) == 0
}

// StallStarts is the number of trainer starts in a row, each cut before its first step, at which
// a run is said to stall: its interruptions come faster than a trainer starts, and it makes no
// progress meanwhile. The runner warns of it once, and verify and analyze name such runs.
const StallStarts = 3

// CutStarts returns the longest streak of consecutive trainer starts cut before their first step,
// and the streak at the end of the log. A start is cut when it ended with a status other than 0
// without recording a step beyond the one it resumed at: killed or stopped before its log was
// open, before its first step, or (with train.log_every above 1, and no notice to make it save)
// before its first log line. The starts are the runner's children, when a runner supervised the
// run (a child killed before its log was open leaves no incarnation); else the incarnations.
func (r *Run) CutStarts() (longest, last int) {
	for _, cut := range r.startsCut() {
		if !cut {
			last = 0
			continue
		}
		last++
		longest = max(longest, last)
	}
	return longest, last
}

// startsCut tells, for each trainer start that ended, in order, whether it was cut before its
// first step. A child is matched with the trainer of its pid or, when it is the launcher of a
// group (whose rank 0 writes the events), with the trainer that began during its life.
func (r *Run) startsCut() []bool {
	byPID := map[int][]*Incarnation{}
	for _, in := range r.Incarnations {
		byPID[in.PID] = append(byPID[in.PID], in)
	}
	started := map[int]time.Time{}
	var cuts []bool
	for _, e := range r.Runner {
		if p, ok := e.Payload.(events.ChildStart); ok {
			started[p.PID] = e.Time
		}
		p, ok := e.Payload.(events.ChildExit)
		if !ok {
			continue
		}
		var in *Incarnation
		if ins := byPID[p.PID]; len(ins) > 0 {
			in, byPID[p.PID] = ins[0], ins[1:]
		} else if from, ok := started[p.PID]; ok {
			in = r.begunIn(from, e.Time)
		}
		cuts = append(cuts, p.Code != codes.ExitDone && (in == nil || in.LastStep <= in.ResumeStep))
	}
	if cuts != nil {
		return cuts
	}
	for _, in := range r.Incarnations {
		cuts = append(cuts, in.Exit != codes.ExitDone && in.LastStep <= in.ResumeStep)
	}
	return cuts
}

// begunIn is the first trainer whose first event came between from and to; nil if none.
func (r *Run) begunIn(from, to time.Time) *Incarnation {
	for _, in := range r.Incarnations {
		if !in.Start.Before(from) && !in.Start.After(to) {
			return in
		}
	}
	return nil
}

// savedLast reports whether the incarnation's last step is one it resumed at (or 0, started
// afresh) or committed a checkpoint of: stopped there, it leaves nothing unsaved.
func (in *Incarnation) savedLast() bool {
	if in.LastStep == in.ResumeStep {
		return true
	}
	return slices.ContainsFunc(in.Commits, func(c Commit) bool { return c.Step == in.LastStep })
}

// Run is a run directory's history.
type Run struct {
	Dir          string
	Incarnations []*Incarnation
	Runner       []events.Event // the runner's events (incarnation 0), in order
	Events       []events.Event // all events, in the order written
}

// ReadRun reads dir's event log.
func ReadRun(dir string) (*Run, error) {
	evs, err := events.Read(filepath.Join(dir, events.FileName))
	if err != nil {
		return nil, err
	}
	r := &Run{Dir: dir, Events: evs}
	byN := map[int]*Incarnation{}
	for _, e := range evs {
		if e.Incarnation == 0 {
			r.Runner = append(r.Runner, e)
			continue
		}
		in := byN[e.Incarnation]
		if in == nil {
			in = &Incarnation{N: e.Incarnation, Start: e.Time, Exit: -1, World: 1}
			byN[e.Incarnation] = in
			r.Incarnations = append(r.Incarnations, in)
		}
		in.End = e.Time
		if s, ok := stepOf(e); ok {
			in.LastStep = max(in.LastStep, s)
		}
		in.add(e.Payload)
	}
	slices.SortFunc(r.Incarnations, func(a, b *Incarnation) int { return cmp.Compare(a.N, b.N) })
	return r, nil
}

// add records what the payload of one of in's events says.
func (in *Incarnation) add(p events.Payload) {
	switch p := p.(type) {
	case events.RunStart:
		in.PID, in.TotalSteps = p.PID, p.TotalSteps
		if p.World > 1 {
			in.World = p.World
		}
	case events.Resume:
		in.Resumed, in.ResumeStep, in.ResumeDir = true, p.Step, p.Dir
	case events.Regroup:
		in.Regroups = append(in.Regroups, p)
	case events.Progress, events.EpochEnd:
		in.Trained = true
	case events.CheckpointBegin:
		in.Begun = append(in.Begun, p.Step)
	case events.CheckpointCommit:
		in.Commits = append(in.Commits, Commit{Step: p.Step, Reason: p.Reason, Dir: p.Dir})
	case events.CheckpointInvalid:
		in.Invalid = append(in.Invalid, fmt.Sprintf("%v: %v", p.Dir, p.Reason))
	case events.EmergencyCheckpoint:
		in.Emergency = true
	case events.Exit:
		in.Exit, in.ExitReason, in.PeerLost = p.Code, p.Reason, p.PeerLost
	}
}

// stepOf is the step an event names in its field step (an integer), if it has one.
func stepOf(e events.Event) (int, bool) {
	var s struct {
		Step *int `json:"step,omitempty"`
	}
	if e.Decode(&s) != nil || s.Step == nil {
		return 0, false
	}
	return *s.Step, true
}

// Metrics is a completed run's metrics.json (the fields analysis reads).
type Metrics struct {
	Name           string  `json:"name"`
	Steps          int     `json:"steps"`
	ComputeSeconds float64 `json:"compute_seconds"`
	Epochs         []struct {
		Epoch int                `json:"epoch"`
		Step  int                `json:"step"`
		Val   map[string]float64 `json:"val"`
	} `json:"epochs"`
	Test map[string]float64 `json:"test"`
}

// ReadMetrics reads dir's metrics.json; fs.ErrNotExist when the run has not completed.
func ReadMetrics(dir string) (*Metrics, error) {
	data, err := os.ReadFile(filepath.Join(dir, MetricsFile))
	if err != nil {
		return nil, err
	}
	var m Metrics
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, MetricsFile), err)
	}
	return &m, nil
}

// Completed reports whether dir holds a run that finished: its last trainer exited 0 and its
// metrics.json exists.
func Completed(dir string) bool {
	r, err := ReadRun(dir)
	if err != nil || len(r.Incarnations) == 0 || r.Incarnations[len(r.Incarnations)-1].Exit != codes.ExitDone {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, MetricsFile))
	return err == nil
}

// FindRuns returns the run directories under root (root itself if it is one): the folders that
// hold an events.jsonl, sorted.
func FindRuns(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == events.FileName {
			dirs = append(dirs, filepath.Dir(path))
		}
		if d.IsDir() && path != root && len(d.Name()) > 0 && d.Name()[0] == '.' {
			return filepath.SkipDir // a checkpoint's temporary directory
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, errors.New("no run directories (with an " + events.FileName + ") under " + root)
	}
	slices.Sort(dirs)
	return dirs, nil
}
