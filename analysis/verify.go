package analysis

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/events"
)

// Verdict is what Verify found of a run.
type Verdict struct {
	Dir       string
	Completed bool
	Starts    int // trainer processes that got as far as their first event
	Notice    int // interruptions with notice: the trainer exited 75 after an emergency checkpoint
	Killed    int // trainer processes killed (no exit event)
	// PeerLost is the trainers (groups) that exited 75 because a peer was gone: a rank killed
	// or frozen. Like a kill, they saved nothing on the way out.
	PeerLost int
	// Worlds is the number of processes of each trainer, in order, without repeats: [1] for a run
	// of lone trainers, [2] for a group of two, [2 1] when a resume shrank it.
	Worlds []int
	// Redo is the number of steps done twice: after each kill, from the checkpoint resumed to the
	// last step the killed process reported (a lower bound: it may have gone a few steps further
	// after its last event); and after each regroup of an elastic group that lost ranks.
	Redo      int
	FinalStep int
	// Final is the newest valid checkpoint of a completed run (nil otherwise).
	Final *checkpoint.Checkpoint
	// CutStarts is the longest streak of trainer starts in a row cut before their first step
	// (Run.CutStarts).
	CutStarts int
	Problems  []string // empty: the run is sound
	// Notes are what is worth knowing of a run but leaves it sound: a stall (StallStarts or more
	// starts in a row cut before their first step).
	Notes []string
}

// OK reports whether the run completed with no problem.
func (v *Verdict) OK() bool { return v.Completed && len(v.Problems) == 0 }

func (v *Verdict) problem(format string, args ...any) {
	v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
}

// Verify checks the run in dir:
//
//   - it completed: the last trainer exited 0 at the run's last step, and metrics.json has the
//     test scores and one validation entry per epoch, the last at the last step;
//   - a trainer is a process, or a data-parallel group whose rank 0 writes the events: a group
//     that lost a peer (exit 75 with a reason naming the rank) is taken as a kill, for it saved
//     nothing; the final checkpoint, when the last trainer committed it, is of its group's size;
//   - every later trainer resumed from the newest checkpoint committed before it started (or
//     from a newer one it had begun, when a kill took the commit's event with it), and started
//     afresh only when no checkpoint had been committed; no checkpoint it found was invalid
//     (the dot-named leftovers of a write or deletion that a kill cut short do not count); a
//     trainer killed before it resumed or did a step is passed over;
//   - steps have no gap and are repeated only after a kill: a trainer that exited 75 wrote an
//     emergency checkpoint, or its last step was saved already (it resumed there, or committed
//     it: a notice before its first step, during the final evaluation), and is taken up at
//     exactly its last step;
//   - every child the runner saw fail was one it interrupted (if a runner supervised the run);
//   - every checkpoint in dir verifies against its manifest.
//
// It notes, without failing the run, a stall: StallStarts or more trainer starts in a row cut
// before their first step.
//
// An error means the run could not be read at all.
func Verify(dir string) (*Verdict, error) {
	r, err := ReadRun(dir)
	if err != nil {
		return nil, err
	}
	v := &Verdict{Dir: dir, Starts: len(r.Incarnations)}
	v.CutStarts, _ = r.CutStarts()
	if v.CutStarts >= StallStarts {
		v.Notes = append(v.Notes, StallNote(v.CutStarts))
	}
	if len(r.Incarnations) == 0 {
		v.problem("no trainer ever started")
		return v, nil
	}
	committed := map[int]bool{} // steps committed by earlier incarnations
	begun := map[int]bool{}
	newest := -1
	var prev *Incarnation
	for _, in := range r.Incarnations {
		v.Worlds = appendWorlds(v.Worlds, in)
		for _, inv := range in.Invalid {
			if !leftover(inv) {
				v.problem("incarnation %d found an invalid checkpoint: %s", in.N, inv)
			}
		}
		tookOver := !in.idle() && !in.stoppedEarly()
		if prev != nil && tookOver {
			checkTakeover(v, prev, in, newest, committed, begun)
		}
		switch {
		case in.Killed():
			v.Killed++
		case in.PeerLost:
			v.PeerLost++
		case in.Exit == codes.ExitPreempted:
			v.Notice++
			if !in.Emergency && !in.savedLast() && !in.stoppedEarly() {
				v.problem("incarnation %d exited 75 at step %d without an emergency checkpoint", in.N, in.LastStep)
			}
		case in.Exit != codes.ExitDone:
			v.problem("incarnation %d failed with exit code %d: %s", in.N, in.Exit, in.ExitReason)
		}
		for _, c := range in.Commits {
			committed[c.Step] = true
			newest = max(newest, c.Step)
		}
		for _, rg := range in.Regroups {
			if !committed[rg.Step] {
				v.problem("incarnation %d regrouped (generation %d) from step %d, whose checkpoint was never committed", in.N, rg.Generation, rg.Step)
			}
		}
		v.Redo += in.RegroupRedo()
		for _, s := range in.Begun {
			begun[s] = true
		}
		if tookOver {
			prev = in
		}
	}

	last := r.Incarnations[len(r.Incarnations)-1]
	v.FinalStep = last.LastStep
	v.Completed = last.Exit == codes.ExitDone
	switch {
	case !v.Completed:
		v.problem("not completed: the last trainer (incarnation %d) %s", last.N, ending(last))
	case last.TotalSteps > 0 && last.LastStep != last.TotalSteps:
		v.problem("the last trainer exited 0 at step %d, not at the run's last step %d", last.LastStep, last.TotalSteps)
	}
	if v.Completed {
		checkMetrics(v, dir, last.LastStep)
	}
	checkRunner(v, r)
	checkCheckpoints(v, dir)
	checkFinalWorld(v, last)
	return v, nil
}

// StallNote says that n trainer starts in a row were cut before their first step.
func StallNote(n int) string {
	return fmt.Sprintf("stalled: %d trainer starts in a row were interrupted before their first step (interruptions came faster than a trainer starts)", n)
}

// leftover reports whether an invalid checkpoint ("dir: reason") is the leftover of a write or a
// deletion that a kill interrupted (a directory whose name starts with a dot): the store's
// protocol leaves those by design and never reads them as checkpoints.
func leftover(invalid string) bool {
	dir, _, _ := strings.Cut(invalid, ": ")
	return strings.HasPrefix(filepath.Base(dir), ".")
}

// checkTakeover checks where in took the run up from prev, the last incarnation that did work.
func checkTakeover(v *Verdict, prev, in *Incarnation, newest int, committed, begun map[int]bool) {
	from := 0
	if in.Resumed {
		from = in.ResumeStep
	}
	switch {
	case newest < 0 && in.Resumed:
		v.problem("incarnation %d resumed at step %d, but no checkpoint had been committed", in.N, from)
	case newest >= 0 && !in.Resumed:
		v.problem("incarnation %d started afresh although the checkpoint of step %d had been committed", in.N, newest)
	case in.Resumed && from < newest:
		v.problem("incarnation %d resumed at step %d, not from the newest checkpoint (step %d)", in.N, from, newest)
	case in.Resumed && from > newest && !begun[from]:
		v.problem("incarnation %d resumed at step %d, from no checkpoint an earlier trainer wrote", in.N, from)
	}
	switch {
	case from > prev.LastStep:
		v.problem("steps %d to %d were skipped: incarnation %d stopped at step %d and incarnation %d resumed at %d",
			prev.LastStep+1, from, prev.N, prev.LastStep, in.N, from)
	case prev.Exit == codes.ExitPreempted && !prev.PeerLost && from != prev.LastStep:
		v.problem("incarnation %d exited after an emergency checkpoint at step %d, but incarnation %d resumed at %d (steps repeated without a kill)",
			prev.N, prev.LastStep, in.N, from)
	case prev.LostWork():
		v.Redo += prev.LastStep - from
	}
}

// ending describes how an incarnation ended.
func ending(in *Incarnation) string {
	switch {
	case in.Killed():
		return fmt.Sprintf("was killed at step %d or a little later", in.LastStep)
	case in.Exit == codes.ExitPreempted:
		return fmt.Sprintf("was preempted at step %d (exit 75) and not started again", in.LastStep)
	default:
		return fmt.Sprintf("exited %d at step %d: %s", in.Exit, in.LastStep, in.ExitReason)
	}
}

// checkMetrics checks the final metrics.json of a completed run that ended at step final.
func checkMetrics(v *Verdict, dir string, final int) {
	m, err := ReadMetrics(dir)
	if err != nil {
		v.problem("final metrics: %v", err)
		return
	}
	if len(m.Test) == 0 {
		v.problem("final metrics: no test scores in %s", MetricsFile)
	}
	if m.Steps != final {
		v.problem("final metrics: %s says %d steps, the trainer %d", MetricsFile, m.Steps, final)
	}
	for i, e := range m.Epochs {
		if e.Epoch != i+1 {
			v.problem("final metrics: epoch %d listed as number %d", e.Epoch, i+1)
			return
		}
	}
	if n := len(m.Epochs); n == 0 || m.Epochs[n-1].Step != final {
		v.problem("final metrics: the last validation is not at the last step %d", final)
	}
}

// checkRunner checks that the runner started again every child that did not finish, and that
// every failure it saw was one it caused.
func checkRunner(v *Verdict, r *Run) {
	for _, e := range r.Runner {
		p, ok := e.Payload.(events.ChildExit)
		if ok && p.Code != codes.ExitDone && p.Code != codes.ExitPreempted && !p.Caused {
			v.problem("the runner saw a child fail that it had not interrupted: code %d, signal %v", p.Code, p.Signal)
		}
	}
}

// checkFinalWorld checks that the final checkpoint, if last committed it, says last's group size
// (a manifest's world of 0 is one process).
func checkFinalWorld(v *Verdict, last *Incarnation) {
	if v.Final == nil || !slices.ContainsFunc(last.Commits, func(c Commit) bool { return c.Step == int(v.Final.Manifest.Step) }) {
		return
	}
	if w := max(v.Final.Manifest.World, 1); w != last.finalWorld() {
		v.problem("the final checkpoint %s is of a group of %d processes, the last trainer had %d", v.Final.Dir, w, last.finalWorld())
	}
}

// checkCheckpoints verifies every checkpoint in dir.
func checkCheckpoints(v *Verdict, dir string) {
	cks, invalid, err := checkpoint.List(dir)
	if err != nil {
		v.problem("checkpoints: %v", err)
		return
	}
	for _, inv := range invalid {
		if !strings.HasPrefix(filepath.Base(inv.Dir), ".") {
			v.problem("checkpoint %s does not verify: %s", inv.Dir, inv.Reason)
		}
	}
	if v.Completed {
		if len(cks) == 0 {
			v.problem("no checkpoint left in a completed run")
			return
		}
		final := slices.MaxFunc(cks, func(a, b checkpoint.Checkpoint) int { return cmp.Compare(a.Manifest.Step, b.Manifest.Step) })
		v.Final = &final
		if int(final.Manifest.Step) != v.FinalStep {
			v.problem("the newest checkpoint is of step %d, not of the last step %d", final.Manifest.Step, v.FinalStep)
		}
	}
}
