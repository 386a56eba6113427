package analysis

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"time"

	"spottrain/codes"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/metrics"
)

// RunMetrics is what one run did, cost and achieved, measured from its events, its config.yaml
// and its metrics.json. Times are seconds of spot time (wall seconds times the run's
// interrupts.time_scale), so a simulated run reads like the spot job it stands for.
//
// The billed time of a run splits into disjoint parts:
//
//	BilledS = StartupS + CheckpointS + EmergencyS + WastedS + UsefulS
//
// and WallS (time to result) = BilledS + DownS.
//
// A run whose trainer was a data-parallel group of World processes (one GPU each) bills World
// GPU-hours per hour: ProcS is the billed time times the processes, each trainer's with its own
// group size (a resume may change it), and the run's cost is priced on it. The times above stay
// the group's wall times. A job of several simulated machines (interrupts.machines) is such a
// group with the machines' GPUs in it, so it bills machines × GPUs per machine × billed time.
type RunMetrics struct {
	Dir   string
	Name  string // the config's name (the experiment)
	Index int    // the repetition (the runner's index), 0 without a runner
	// Model, Strategy and Pattern say what the run was: the model layer (or model.kind without
	// one), checkpoint.strategy and interrupts.pattern ("none": an on-demand baseline).
	Model, Strategy, Pattern string
	NoNoticeShare            float64 // the share of interruptions that were kills without notice
	TrainingHash             string  // runs with the same hash train the same thing
	TimeScale                float64 // spot seconds per wall second
	// Machines is the simulated job's size (interrupts.machines; 1 for configs from before it),
	// each machine interrupted on its own: interruptions are the job's, any one stops every machine.
	Machines int
	// IntervalS is the strategy's checkpoint interval in spot seconds: fixed's every_seconds
	// (0 when off), adaptive's bounds [min_seconds, max_seconds]; zero for milestone.
	IntervalS [2]float64
	Completed bool
	Prices    configs.Prices // the config's cost settings, resolved

	WallS float64 // from the first trainer start to the end of the run
	// DownS is the time without a VM (not billed): from each restart to the next trainer start,
	// between two runners, and between trainers started by hand (no runner).
	DownS   float64
	BilledS float64 // with a VM: WallS - DownS
	// World is the number of processes of the run's last trainer (1 for a lone trainer), and
	// Worlds every size its trainers had, in order, without repeats.
	World  int
	Worlds []int
	// ProcS is the billed process-seconds (GPU-seconds): each trainer's billed time times its
	// World; the billed time outside every trainer's life at the last trainer's. = BilledS for
	// runs of one process.
	ProcS float64
	// StartupS is the time trainers spent starting (process, data, restore) before their first
	// step, and the whole life of a trainer killed before it began to train.
	StartupS    float64
	RestartS    float64 // the part of StartupS after interruptions (StartupS less the first start)
	CheckpointS float64 // training blocked by periodic, milestone and final checkpoints
	EmergencyS  float64 // from a notice to the trainer's exit (the emergency checkpoint)
	// WastedS is work done and lost: what killed trainers computed after the checkpoint the next
	// trainer resumed from (their own checkpoint blocking not counted twice).
	WastedS float64
	UsefulS float64 // the rest: training and evaluation that the final model kept

	Steps       int // of the run
	RedoSteps   int // steps done twice (after kills, and regroups that went back to a checkpoint)
	Checkpoints int // checkpoints committed, emergency ones excluded
	Notices     int // interruptions with notice (SIGTERM on schedule)
	Kills       int // interruptions without notice (SIGKILL on schedule)
	GraceKills  int // notices whose trainer outlived the grace period and was killed
	// CutStarts is the longest streak of trainer starts in a row cut before their first step
	// (Run.CutStarts); StallStarts or more: the run stalled.
	CutStarts int

	// Metric is the final test metric the workload is judged by (its main metric: top1, higher is
	// better, or rmse_kw, lower); "" when the run has no final test scores.
	Metric       string
	MetricValue  float64
	HigherBetter bool
	Test         map[string]float64 // all final test metrics

	// ReduceMS and BareMS are the group's gradient sums per step inside the step and a bare
	// allreduce of the same bytes (group_stats, weighted by steps over the trainers that wrote
	// one); 0 for a run with no group.
	ReduceMS, BareMS float64

	Incarnations []Span       // each trainer's life, for the timeline
	Losses       []StepValue  // training loss from progress events, in the order written
	Validations  []StepValue  // the primary metric at each epoch's end
	Interrupts   []Interrupt  // in the order sent
	Downs        [][2]float64 // [start, end] of each time without a VM, seconds from the start

	main metrics.Metric // the workload's main metric, as its model kind declares it
}

// Interruptions is the number of interruptions the run had (notices and kills on schedule).
func (m *RunMetrics) Interruptions() int { return m.Notices + m.Kills }

// Baseline reports whether the run is an on-demand baseline (never interrupted by design).
func (m *RunMetrics) Baseline() bool { return m.Pattern == "none" }

// CostUSD is what the run's billed GPU-hours (ProcS) cost at its prices, which are per
// GPU-hour: on demand for a baseline, else on spot.
func (m *RunMetrics) CostUSD() float64 {
	price := m.Prices.SpotPerHour
	if m.Baseline() {
		price = m.Prices.OnDemandPerHour
	}
	return price * m.GPUHours()
}

// GPUHours is the billed GPU-hours: ProcS in hours; without ProcS (metrics not measured from
// events) BilledS times World, a World of 0 counting as one process.
func (m *RunMetrics) GPUHours() float64 {
	if m.ProcS == 0 {
		return m.BilledS * float64(max(m.World, 1)) / 3600
	}
	return m.ProcS / 3600
}

// Procs is the mean number of processes over the billed time (GPUHours / BilledS); World (at
// least 1) when nothing was billed.
func (m *RunMetrics) Procs() float64 {
	if m.BilledS <= 0 {
		return float64(max(m.World, 1))
	}
	return m.GPUHours() * 3600 / m.BilledS
}

// AllreduceEfficiency is BareMS / ReduceMS: how close the gradient sums inside a step come to a
// bare allreduce of the same bytes (the in-step time includes waiting for the slowest rank);
// NaN for a run with no group statistics.
func (m *RunMetrics) AllreduceEfficiency() float64 {
	if m.ReduceMS <= 0 {
		return math.NaN()
	}
	return m.BareMS / m.ReduceMS
}

// RatePerHour is the observed interruption rate per billed hour (0 without billed time).
func (m *RunMetrics) RatePerHour() float64 {
	if m.BilledS <= 0 {
		return 0
	}
	return float64(m.Interruptions()) / (m.BilledS / 3600)
}

// Span is one trainer's life in a run, in seconds from the run's start.
type Span struct {
	Incarnation int
	Start       float64 // process start
	Ready       float64 // first step (resume done); = End for a trainer that never began
	End         float64 // exit or death
	// Lost is when the work that was lost began (the state the next trainer resumed from);
	// = End when nothing was lost.
	Lost float64
	// Ending is "done", "notice" (exit 75), "kill" (no exit: killed, or still running; or exit 75
	// when its group lost a peer: nothing saved either) or "failed".
	Ending string
}

// StepValue is a value at a step, with the incarnation that computed it.
type StepValue struct {
	Step        int
	Value       float64
	Incarnation int
}

// Interrupt is one interruption the runner sent.
type Interrupt struct {
	At      float64 // seconds from the run's start
	Step    int     // the last step the trainer had reported
	Kind    codes.InterruptKind
	Machine int // the simulated machine it hit (0 for a job of one)
}

// ErrNoRun is returned by Measure for a directory with no trainer events.
var ErrNoRun = errors.New("no trainer ever started")

// Measure reads the run in dir and measures it. A run that did not complete is measured as far
// as it went (Completed false, no final metric).
func Measure(dir string) (*RunMetrics, error) {
	r, err := ReadRun(dir)
	if err != nil {
		return nil, err
	}
	if len(r.Incarnations) == 0 {
		return nil, ErrNoRun // and maybe no config.yaml: no trainer got as far as writing it
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	cfg, err := configs.ReadSaved(cfgFile)
	if err != nil {
		return nil, err
	}
	m, err := measure(r, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	if m.Completed {
		fm, err := ReadMetrics(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			m.Completed = false
		case err != nil:
			return nil, err
		default:
			m.Test = fm.Test
			if v, ok := fm.Test[m.main.Name]; ok {
				m.Metric, m.HigherBetter, m.MetricValue = m.main.Name, m.main.HigherBetter, v
			}
		}
	}
	return m, nil
}

// measure computes the metrics of r, whose config is cfg.
func measure(r *Run, cfg configs.Config) (*RunMetrics, error) {
	if len(r.Incarnations) == 0 {
		return nil, ErrNoRun
	}
	m, err := fromConfig(r.Dir, cfg)
	if err != nil {
		return nil, err
	}
	t := newTimes(r)
	if rs := t.runnerStart; rs != nil {
		if rs.TimeScale > 0 {
			m.TimeScale = rs.TimeScale
		}
		m.Index = rs.Index
	}
	t.scale = m.TimeScale
	t.byTime = m.Machines > 1
	m.addRunner(r, t)
	m.addTrainers(r, t)
	if t.byTime {
		m.addUnlogged(t)
	}
	m.addTrainerEvents(t)
	for _, in := range r.Incarnations {
		if sig := t.signal[in.N]; !sig.IsZero() && in.Exit == codes.ExitPreempted {
			m.EmergencyS += t.spot(sig, t.end(in))
		}
	}

	m.CutStarts, _ = r.CutStarts()
	last := r.Incarnations[len(r.Incarnations)-1]
	m.Completed = last.Exit == codes.ExitDone
	m.Steps = last.LastStep
	m.WallS = t.at(t.finish)
	m.BilledS = m.WallS - m.DownS
	m.UsefulS = m.BilledS - m.StartupS - m.CheckpointS - m.EmergencyS - m.WastedS
	m.addWorlds(r)
	return m, nil
}

// addWorlds sets the group sizes and the billed process-seconds, from the trainers' spans.
func (m *RunMetrics) addWorlds(r *Run) {
	var spans, proc float64
	for i, in := range r.Incarnations {
		m.Worlds = appendWorlds(m.Worlds, in)
		s := m.Incarnations[i].End - m.Incarnations[i].Start
		spans += s
		proc += s * float64(in.World)
	}
	m.World = r.Incarnations[len(r.Incarnations)-1].finalWorld()
	m.ProcS = proc + max(m.BilledS-spans, 0)*float64(m.World)
}

// fromConfig starts the metrics of the run in dir with what its config says.
func fromConfig(dir string, cfg configs.Config) (*RunMetrics, error) {
	m := &RunMetrics{
		Dir: dir, Name: cfg.Name, Model: cfg.Layers.Model, Strategy: cfg.Checkpoint.Strategy,
		Pattern: cfg.Interrupts.Pattern, NoNoticeShare: cfg.Interrupts.NoNoticeShare,
		TrainingHash: cfg.TrainingHash(), TimeScale: cfg.Interrupts.TimeScale, Machines: max(cfg.Interrupts.Machines, 1),
	}
	switch ck := cfg.Checkpoint; ck.Strategy {
	case "fixed":
		m.IntervalS = [2]float64{ck.EverySeconds, ck.EverySeconds}
	case "adaptive":
		m.IntervalS = [2]float64{ck.MinSeconds, ck.MaxSeconds}
	}
	set, ok := metrics.OfModel(cfg.Model.Kind)
	if !ok {
		return nil, fmt.Errorf("model.kind %q declares no metrics", cfg.Model.Kind) // a saved config has been validated
	}
	m.main = set.Main()
	var err error
	if m.Prices, err = cfg.Cost.Prices(); err != nil {
		return nil, err // a saved config has been validated: only a price list that changed
	}
	if m.Model == "" {
		m.Model = cfg.Model.Kind
	}
	if m.TimeScale <= 0 {
		m.TimeScale = 1
	}
	return m, nil
}

// addRunner adds the runner's view: times without a VM and the interruptions it sent. A log from
// before child_start events existed counts each restart's configured delay instead. A run stopped
// (Ctrl+C) and taken up again later by another runner had no VM in between either.
func (m *RunMetrics) addRunner(r *Run, t *times) {
	var pending time.Time // a restart waiting for its child_start
	var before time.Time  // the previous event's
	for _, e := range r.Events {
		prev := before
		before = e.Time
		if e.Incarnation != 0 {
			continue
		}
		switch p := e.Payload.(type) {
		case events.RunnerStart:
			if !prev.IsZero() {
				m.addDown(t, prev, e.Time)
			}
		case events.Restart:
			pending = e.Time
			if len(t.spawned) == 0 {
				m.DownS += p.DelayS
				m.Downs = append(m.Downs, [2]float64{t.at(e.Time), t.at(e.Time) + p.DelayS})
			}
		case events.ChildStart:
			if !pending.IsZero() {
				m.addDown(t, pending, e.Time)
				pending = time.Time{}
			}
		case events.InterruptSent:
			m.addInterrupt(t, e.Time, p)
		}
	}
}

// addDown adds a time without a VM, from a to b.
func (m *RunMetrics) addDown(t *times, a, b time.Time) {
	m.DownS += t.spot(a, b)
	m.Downs = append(m.Downs, [2]float64{t.at(a), t.at(b)})
}

// addInterrupt counts an interrupt the runner sent at time at.
func (m *RunMetrics) addInterrupt(t *times, at time.Time, p events.InterruptSent) {
	switch {
	case p.Reason == codes.Grace:
		m.GraceKills++
	case p.Reason != codes.Schedule:
		return // a Ctrl+C is no interruption of the spot job
	case p.Kind == codes.Kill:
		m.Kills++
	default:
		m.Notices++
	}
	in := t.byPID[p.PID]
	if in == nil && m.Machines > 1 {
		in = t.latest(at) // a signal to one machine's worker, not to rank 0 that writes the events
	}
	step := 0
	if in != nil {
		step = in.LastStep
	}
	if p.Reason == codes.Schedule {
		m.Interrupts = append(m.Interrupts, Interrupt{At: t.at(at), Step: step, Kind: p.Kind, Machine: p.Machine})
	}
}

// addTrainers adds each trainer's span: its startup, and the work lost when it was killed.
func (m *RunMetrics) addTrainers(r *Run, t *times) {
	var prev *Incarnation // the last trainer that did work
	prevSpan := -1        // its index in m.Incarnations
	for i, in := range r.Incarnations {
		span := Span{Incarnation: in.N, Start: t.at(t.spawn(in)), End: t.at(t.end(in)), Ending: endingKind(in)}
		ready := t.ready[in.N]
		if ready.IsZero() || in.idle() {
			span.Ready = span.End
		} else {
			span.Ready = t.at(ready)
		}
		span.Lost = span.End
		if len(r.Runner) == 0 && i > 0 {
			// Trainers started by hand: nothing says a VM waited between them.
			gap := [2]float64{m.Incarnations[i-1].End, span.Start}
			if gap[1] > gap[0] {
				m.DownS += gap[1] - gap[0]
				m.Downs = append(m.Downs, gap)
			}
		}
		startup := span.Ready - span.Start
		m.StartupS += startup
		if i > 0 {
			m.RestartS += startup
		}
		if prev != nil && prev.LostWork() && !in.idle() {
			m.addLost(t, prev, in, prevSpan)
		}
		m.RedoSteps += in.RegroupRedo()
		m.Incarnations = append(m.Incarnations, span)
		if !in.idle() {
			prev, prevSpan = in, len(m.Incarnations)-1
		}
	}
}

// addUnlogged adds, to the startup and restart times, the whole life of each child of the runner
// in which no trainer wrote an event: a group killed or stopped before its rank 0 opened the log.
// Only for jobs of several machines (t.byTime): a lone trainer's start before its log is left as
// it was measured before.
func (m *RunMetrics) addUnlogged(t *times) {
	for _, c := range t.children {
		if c.exit.IsZero() || slices.ContainsFunc(t.incarnations, func(in *Incarnation) bool {
			return !in.Start.Before(c.start) && !in.Start.After(c.exit)
		}) {
			continue
		}
		life := t.spot(c.start, c.exit)
		m.StartupS += life
		if c.attempt > 0 {
			m.RestartS += life
		}
	}
}

// addLost adds the work of the killed trainer prev (span prevSpan) after the state that in
// resumed from: it was lost.
func (m *RunMetrics) addLost(t *times, prev, in *Incarnation, prevSpan int) {
	from := 0
	if in.Resumed {
		from = in.ResumeStep
	}
	lostAt := t.stateAt(prev, from)
	if !lostAt.IsZero() {
		lost := max(t.spot(lostAt, t.end(prev)), 0)
		lost -= t.blockedAfter(prev, lostAt) * m.TimeScale
		m.WastedS += max(lost, 0)
		m.Incarnations[prevSpan].Lost = t.at(lostAt)
	}
	m.RedoSteps += max(prev.LastStep-from, 0)
}

// addTrainerEvents adds the checkpoints' blocking, the training losses, the validations and the
// group's statistics. Non-finite values (a diverged run) are left out.
func (m *RunMetrics) addTrainerEvents(t *times) {
	var steps float64
	for _, e := range t.trainer {
		switch p := e.Payload.(type) {
		case events.CheckpointCommit:
			if p.Reason != codes.Emergency {
				m.CheckpointS += p.BlockingMS / 1000 * m.TimeScale
				m.Checkpoints++
			}
		case events.Progress:
			if finite(p.Loss) {
				m.Losses = append(m.Losses, StepValue{Step: p.Step, Value: p.Loss, Incarnation: e.Incarnation})
			}
		case events.EpochEnd:
			if v, ok := finiteValues(p.Metrics)[m.main.Name]; ok {
				m.Validations = append(m.Validations, StepValue{Step: p.Step, Value: v, Incarnation: e.Incarnation})
			}
		case events.GroupStats:
			if p.Steps > 0 && finite(p.ReduceMS) && finite(p.BareMS) {
				n := float64(p.Steps)
				m.ReduceMS = (m.ReduceMS*steps + p.ReduceMS*n) / (steps + n)
				m.BareMS = (m.BareMS*steps + p.BareMS*n) / (steps + n)
				steps += n
			}
		}
	}
}

// endingKind says how an incarnation ended.
func endingKind(in *Incarnation) string {
	switch {
	case in.Exit == codes.ExitDone:
		return "done"
	case in.LostWork():
		return "kill"
	case in.Exit == codes.ExitPreempted:
		return "notice"
	default:
		return "failed"
	}
}

// finiteValues is vals without its non-finite values.
func finiteValues(vals map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range vals {
		if finite(v) {
			out[k] = v
		}
	}
	return out
}

// times indexes the moments of a run that its metrics need.
type times struct {
	start, finish time.Time
	scale         float64             // spot seconds per wall second
	runnerStart   *events.RunnerStart // the first; nil if none
	trainer       []events.Event      // the trainers' events, in order
	byPID         map[int]*Incarnation
	incarnations  []*Incarnation // in order
	children      []runnerChild  // in order
	// byTime matches trainers with the runner's children by time, not pid: the children are
	// launchers of groups, whose rank 0 writes the events.
	byTime  bool
	spawned map[int]time.Time // child_start by pid
	exited  map[int]time.Time // child_exit by pid
	ready   map[int]time.Time // by incarnation: resume, or run_start of a fresh start
	signal  map[int]time.Time // by incarnation: signal_received
	begun   map[[2]int]time.Time
	blocked map[int][]blocking // by incarnation: non-emergency checkpoint commits
}

// runnerChild is a process the runner started: its start and exit (zero while it ran).
type runnerChild struct {
	pid, attempt int
	start, exit  time.Time
}

// blocking is a checkpoint that blocked training for ms wall milliseconds, committed at time at.
type blocking struct {
	at time.Time
	ms float64
}

func newTimes(r *Run) *times {
	t := &times{byPID: map[int]*Incarnation{}, spawned: map[int]time.Time{}, exited: map[int]time.Time{},
		ready: map[int]time.Time{}, signal: map[int]time.Time{}, begun: map[[2]int]time.Time{},
		blocked: map[int][]blocking{}}
	t.incarnations = r.Incarnations
	for _, in := range r.Incarnations {
		if in.PID != 0 {
			t.byPID[in.PID] = in
		}
	}
	for _, e := range r.Events {
		if t.start.IsZero() {
			t.start = e.Time
		}
		if e.Time.After(t.finish) {
			t.finish = e.Time
		}
		t.add(e)
		if e.Incarnation > 0 {
			t.trainer = append(t.trainer, e)
		}
	}
	return t
}

// add indexes the moment of e, if it is one that metrics need.
func (t *times) add(e events.Event) {
	switch p := e.Payload.(type) {
	case events.RunnerStart:
		if t.runnerStart == nil {
			t.runnerStart = &p
		}
	case events.ChildStart:
		t.spawned[p.PID] = e.Time
		t.children = append(t.children, runnerChild{pid: p.PID, attempt: p.Attempt, start: e.Time})
	case events.ChildExit:
		t.exited[p.PID] = e.Time
		for i := len(t.children) - 1; i >= 0; i-- {
			if t.children[i].pid == p.PID && t.children[i].exit.IsZero() {
				t.children[i].exit = e.Time
				break
			}
		}
	case events.RunStart, events.Resume:
		t.ready[e.Incarnation] = e.Time
	case events.SignalReceived:
		if t.signal[e.Incarnation].IsZero() {
			t.signal[e.Incarnation] = e.Time
		}
	case events.CheckpointBegin:
		t.begun[[2]int{e.Incarnation, p.Step}] = e.Time
	case events.CheckpointCommit:
		if p.Reason != codes.Emergency {
			t.blocked[e.Incarnation] = append(t.blocked[e.Incarnation], blocking{at: e.Time, ms: p.BlockingMS})
		}
	}
}

// latest is the last trainer begun by time at; nil if none.
func (t *times) latest(at time.Time) *Incarnation {
	var last *Incarnation
	for _, in := range t.incarnations {
		if !in.Start.After(at) {
			last = in
		}
	}
	return last
}

// spot is the spot time from a to b, in seconds.
func (t *times) spot(a, b time.Time) float64 { return b.Sub(a).Seconds() * t.scale }

// at is x in spot seconds from the run's start.
func (t *times) at(x time.Time) float64 { return t.spot(t.start, x) }

// spawn is when in's process started: the runner's child_start (of its pid, or for a group the
// child in whose life it began); else the run's start for the first trainer, or in's first event.
func (t *times) spawn(in *Incarnation) time.Time {
	if s, ok := t.spawned[in.PID]; ok && in.PID != 0 && s.Before(in.Start) {
		return s
	}
	if c := t.childOf(in); c != nil {
		return c.start
	}
	if in.N == 1 {
		return t.start
	}
	return in.Start
}

// end is when in's process ended: the runner's child_exit, or in's last event.
func (t *times) end(in *Incarnation) time.Time {
	if x, ok := t.exited[in.PID]; ok && in.PID != 0 && x.After(in.End) {
		return x
	}
	if c := t.childOf(in); c != nil && c.exit.After(in.End) {
		return c.exit
	}
	return in.End
}

// childOf is, when t.byTime, the runner's child in whose life in began: the last one started
// by then; nil if none, or when trainers are matched by pid.
func (t *times) childOf(in *Incarnation) *runnerChild {
	if !t.byTime {
		return nil
	}
	var found *runnerChild
	for i := range t.children {
		if !t.children[i].start.After(in.Start) {
			found = &t.children[i]
		}
	}
	return found
}

// stateAt is when in held the training state of step: its start of training if it began there,
// else the checkpoint of that step it began; zero if neither.
func (t *times) stateAt(in *Incarnation, step int) time.Time {
	from := 0
	if in.Resumed {
		from = in.ResumeStep
	}
	if step == from {
		return t.ready[in.N]
	}
	return t.begun[[2]int{in.N, step}]
}

// blockedAfter is the wall time in's checkpoints blocked training after from, in seconds.
func (t *times) blockedAfter(in *Incarnation, from time.Time) float64 {
	var s float64
	for _, b := range t.blocked[in.N] {
		if b.at.After(from) {
			s += b.ms / 1000
		}
	}
	return s
}
