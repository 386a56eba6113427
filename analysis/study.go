package analysis

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"

	"spottrain/configs"
)

// Stat is a mean over repetitions with its 95% confidence interval (Student's t; Lo = Hi = Mean
// for a single value).
type Stat struct {
	Mean, Lo, Hi float64
	N            int
}

// NewStat summarizes xs; the zero Stat for none.
func NewStat(xs []float64) Stat {
	n := len(xs)
	if n == 0 {
		return Stat{}
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(n)
	if n == 1 {
		return Stat{Mean: mean, Lo: mean, Hi: mean, N: 1}
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / float64(n-1))
	half := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(0.975) * sd / math.Sqrt(float64(n))
	return Stat{Mean: mean, Lo: mean - half, Hi: mean + half, N: n}
}

// Half is the half-width of the interval.
func (s Stat) Half() float64 { return (s.Hi - s.Lo) / 2 }

// String formats s as "mean ± half", both to about four significant digits of the mean.
func (s Stat) String() string {
	d := 4
	if a := math.Abs(s.Mean); a > 0 && finite(a) {
		d = min(max(3-int(math.Floor(math.Log10(a))), 0), 4)
	}
	if s.N <= 1 {
		return fmt.Sprintf("%.*f", d, s.Mean)
	}
	return fmt.Sprintf("%.*f ± %.*f", d, s.Mean, d, s.Half())
}

// Group is the repetitions of one experiment: one model, strategy and pattern, one share of
// interruptions without notice and one number of simulated machines.
type Group struct {
	Name                     string // the experiment (the runs' config name)
	Model, Strategy, Pattern string
	NoNoticeShare            float64
	Machines                 int // of the simulated job (RunMetrics.Machines)
	TrainingHash             string
	Runs                     []*RunMetrics // completed runs, by index
	// Baseline is the on-demand group that trains the same thing on as many machines (nil for a
	// baseline, or when the study has none).
	Baseline *Group
	Prices   configs.Prices // of the first run; the baseline is priced with them too

	WallH, BilledH           Stat // hours
	WastedMin, CheckpointMin Stat // minutes
	RestartMin, DownMin      Stat // minutes: billed restarts; time without a VM
	Interruptions, Rate      Stat // count; per billed hour
	Metric                   Stat // the primary final metric
	CostUSD                  Stat // at the spot price (on-demand for a baseline)
	Savings                  Stat // 1 - cost / the baseline's mean cost (see SavingsOf)
	// GPUH is the billed GPU-hours: BilledH times the processes of each run (RunMetrics.ProcS);
	// = BilledH for runs of one process. Costs, savings and the break-even are priced on it.
	GPUH Stat
	// Procs is the largest group size of the runs (1: every run trained in one process).
	Procs int
	// PerInterruptionMin is the billed cost of one interruption: restart, lost work and the
	// emergency checkpoint, in minutes (mean over the runs that had interruptions).
	PerInterruptionMin Stat
	// QuietH is the billed GPU-hours the runs would have taken without interruptions: GPUH less
	// what the interruptions cost.
	QuietH Stat
	// BreakEven is the interruption rate of the job, per billed hour, above which spot costs
	// more than on demand, from the measured overheads (+Inf with no cost per interruption; 0
	// when spot never pays; NaN without a baseline). Per machine-hour it is BreakEvenPerMachine.
	BreakEven float64
}

// BreakEvenPerMachine is BreakEven per machine: the rate at which each of the job's Machines may
// be interrupted, per hour, before spot stops paying (the job's rate is Machines times it).
func (g *Group) BreakEvenPerMachine() float64 { return g.BreakEven / float64(max(g.Machines, 1)) }

// Scenario names the share of interruptions without notice, and the simulated machines when more
// than one, e.g. "25% kills" or "25% kills, 4 machines".
func (g *Group) Scenario() string { return scenario(g.NoNoticeShare, g.Machines) }

func scenario(share float64, machines int) string {
	s := fmt.Sprintf("%.0f%% kills", 100*share)
	if share >= 1 {
		s = "kills only"
	}
	if machines > 1 {
		s += fmt.Sprintf(", %d machines", machines)
	}
	return s
}

// IsBaseline reports whether g is an on-demand baseline.
func (g *Group) IsBaseline() bool { return g.Pattern == "none" }

// Study is a set of runs grouped, priced and compared with their baselines.
type Study struct {
	Runs       []*RunMetrics // every run measured, completed or not
	Incomplete []*RunMetrics // runs that have not completed (left out of the groups)
	Groups     []*Group      // sorted: model, scenario, strategy, pattern; baselines first
	// Slowdown is, per completed run, its useful compute over the median of the completed runs
	// that train the same thing (the same TrainingHash) on as many machines: the same work, so a value well above 1
	// means the machine ran it slower (shared CPU, a slow VM), which inflates every time and cost
	// of that run.
	Slowdown map[*RunMetrics]float64
}

// StalledRuns are the runs, completed or not, in which StallStarts or more trainer starts in a row
// were cut before their first step, in the order of Runs and Incomplete.
func (s *Study) StalledRuns() []*RunMetrics {
	var out []*RunMetrics
	for _, r := range append(slices.Clip(s.Runs), s.Incomplete...) {
		if r.CutStarts >= StallStarts {
			out = append(out, r)
		}
	}
	return out
}

// SlowRuns are the completed runs whose Slowdown exceeds limit, in the order of Runs.
func (s *Study) SlowRuns(limit float64) []*RunMetrics {
	var out []*RunMetrics
	for _, r := range s.Runs {
		if s.Slowdown[r] > limit {
			out = append(out, r)
		}
	}
	return out
}

// slowdowns computes Study.Slowdown.
func slowdowns(runs []*RunMetrics) map[*RunMetrics]float64 {
	useful := map[string][]float64{}
	for _, r := range runs {
		if r.Completed {
			useful[sameWork(r)] = append(useful[sameWork(r)], r.UsefulS)
		}
	}
	out := map[*RunMetrics]float64{}
	for _, r := range runs {
		if !r.Completed {
			continue
		}
		xs := useful[sameWork(r)]
		slices.Sort(xs)
		median := xs[len(xs)/2]
		if len(xs)%2 == 0 {
			median = (xs[len(xs)/2-1] + median) / 2
		}
		if median > 0 {
			out[r] = r.UsefulS / median
		}
	}
	return out
}

// sameWork is what runs that do the same work share: the training, on as many machines (a
// group of more ranks on this machine takes longer).
func sameWork(r *RunMetrics) string { return fmt.Sprintf("%s|%d", r.TrainingHash, r.Machines) }

// NewStudy groups the completed runs and computes the aggregates, each group at the prices of
// its runs (RunMetrics.Prices).
func NewStudy(runs []*RunMetrics) *Study {
	s := &Study{Runs: runs, Slowdown: slowdowns(runs)}
	byKey := map[string]*Group{}
	for _, r := range runs {
		if !r.Completed {
			s.Incomplete = append(s.Incomplete, r)
			continue
		}
		share := r.NoNoticeShare
		if r.Baseline() {
			share = 0 // nothing is interrupted: the share is moot
		}
		key := fmt.Sprintf("%s|%v|%s|%d", r.Name, share, r.TrainingHash, r.Machines)
		g := byKey[key]
		if g == nil {
			g = &Group{Name: r.Name, Model: r.Model, Strategy: r.Strategy, Pattern: r.Pattern, NoNoticeShare: share,
				Machines: r.Machines, TrainingHash: r.TrainingHash, Prices: r.Prices}
			byKey[key] = g
			s.Groups = append(s.Groups, g)
		}
		g.Runs = append(g.Runs, r)
	}
	baselines := map[string]*Group{}
	for _, g := range s.Groups {
		slices.SortFunc(g.Runs, func(a, b *RunMetrics) int { return cmp.Compare(a.Index, b.Index) })
		if g.IsBaseline() {
			baselines[baselineKey(g)] = g
		}
	}
	for _, g := range s.Groups {
		if !g.IsBaseline() {
			g.Baseline = baselines[baselineKey(g)]
		}
	}
	// Baselines first, so the others can compare with their mean cost.
	slices.SortStableFunc(s.Groups, func(a, b *Group) int {
		return cmp.Or(cmp.Compare(a.Model, b.Model), -cmp.Compare(btoi(a.IsBaseline()), btoi(b.IsBaseline())),
			cmp.Compare(a.NoNoticeShare, b.NoNoticeShare), cmp.Compare(a.Machines, b.Machines),
			cmp.Compare(strategyRank(a.Strategy), strategyRank(b.Strategy)),
			cmp.Compare(patternOrder(a.Pattern), patternOrder(b.Pattern)))
	})
	for _, g := range s.Groups {
		g.aggregate()
	}
	return s
}

// baselineKey is what a group and its baseline share: the training, on as many machines.
func baselineKey(g *Group) string { return fmt.Sprintf("%s|%d", g.TrainingHash, g.Machines) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// patternOrder orders patterns from the calmest.
func patternOrder(p string) int {
	return slices.Index([]string{"none", "regular", "poisson", "bursty"}, p)
}

// baseCost is the mean cost of g's baseline at g's on-demand price.
func (g *Group) baseCost() float64 {
	return g.Prices.OnDemandPerHour * g.Baseline.GPUH.Mean
}

// SavingsOf is what run r of g saved against g's baseline: 1 - its cost / the baseline's mean
// cost, both at g's prices and on billed GPU-hours; NaN without a baseline.
func (g *Group) SavingsOf(r *RunMetrics) float64 {
	if g.Baseline == nil {
		return math.NaN()
	}
	return 1 - g.Prices.SpotPerHour*r.GPUHours()/g.baseCost()
}

// perInterruption is the billed seconds one interruption of r cost, or false without any.
func perInterruption(r *RunMetrics) (float64, bool) {
	n := r.Interruptions()
	if n == 0 {
		return 0, false
	}
	return (r.RestartS + r.WastedS + r.EmergencyS) / float64(n), true
}

// quietHours is what r would have billed without its interruptions, in GPU-hours: the billed
// time less what the interruptions cost, times the run's processes.
func quietHours(r *RunMetrics) float64 {
	q, _ := perInterruption(r)
	return (r.BilledS - q*float64(r.Interruptions())) / 3600 * r.Procs()
}

func (g *Group) aggregate() {
	col := func(f func(r *RunMetrics) float64) Stat {
		xs := make([]float64, len(g.Runs))
		for i, r := range g.Runs {
			xs[i] = f(r)
		}
		return NewStat(xs)
	}
	g.WallH = col(func(r *RunMetrics) float64 { return r.WallS / 3600 })
	g.BilledH = col(func(r *RunMetrics) float64 { return r.BilledS / 3600 })
	g.GPUH = col(func(r *RunMetrics) float64 { return r.GPUHours() })
	g.Procs = 1
	for _, r := range g.Runs {
		g.Procs = max(g.Procs, slices.Max(append([]int{r.World}, r.Worlds...)))
	}
	g.WastedMin = col(func(r *RunMetrics) float64 { return r.WastedS / 60 })
	g.CheckpointMin = col(func(r *RunMetrics) float64 { return r.CheckpointS / 60 })
	g.RestartMin = col(func(r *RunMetrics) float64 { return r.RestartS / 60 })
	g.DownMin = col(func(r *RunMetrics) float64 { return r.DownS / 60 })
	g.Interruptions = col(func(r *RunMetrics) float64 { return float64(r.Interruptions()) })
	g.Rate = col(func(r *RunMetrics) float64 { return r.RatePerHour() })
	g.Metric = col(func(r *RunMetrics) float64 { return r.MetricValue })
	g.CostUSD = col(func(r *RunMetrics) float64 { return r.CostUSD() })
	var per []float64
	for _, r := range g.Runs {
		if q, ok := perInterruption(r); ok {
			per = append(per, q/60)
		}
	}
	g.PerInterruptionMin = NewStat(per)
	g.BreakEven = math.NaN()
	if g.Baseline == nil {
		return
	}
	g.Savings = col(g.SavingsOf)
	g.QuietH = col(quietHours)
	g.BreakEven = BreakEven(g.Prices.Ratio(), g.QuietH.Mean, g.Baseline.GPUH.Mean, g.PerInterruptionMin.Mean/60)
}

// BreakEven is the interruption rate (per billed hour) at which spot and on-demand cost the same,
// for a job that bills quietH hours on spot without interruptions and baseH on demand, when each
// interruption costs perH billed hours and spot costs ratio of the on-demand price. For groups of
// processes, quietH and baseH are GPU-hours (processes × hours: B scales with them), perH and λ
// stay in hours of the job's billed time.
//
// With λ interruptions per billed hour, a spot job bills B = quietH + λ·B·perH hours, so
// B = quietH / (1 - λ·perH); spot pays while ratio·B < baseH, that is below
// λ* = (1 - ratio·quietH/baseH) / perH. It is +Inf when interruptions cost nothing, and 0 when
// spot does not pay even without interruptions.
func BreakEven(ratio, quietH, baseH, perH float64) float64 {
	margin := 1 - ratio*quietH/baseH
	switch {
	case margin <= 0:
		return 0
	case perH <= 0:
		return math.Inf(1)
	}
	return margin / perH
}

// SavingsAt is the model's savings at rate interruptions per billed hour (see BreakEven); -Inf
// at or beyond the rate at which the job never finishes (rate·perH >= 1).
func SavingsAt(rate, ratio, quietH, baseH, perH float64) float64 {
	left := 1 - rate*perH
	if left <= 0 {
		return math.Inf(-1)
	}
	return 1 - ratio*quietH/left/baseH
}

// Curve is the cost model of one strategy for one model, share of kills and number of machines,
// pooled over the interrupt patterns: what spot saves as a function of the job's interruption
// rate.
type Curve struct {
	Model, Strategy string
	NoNoticeShare   float64
	Machines        int
	Ratio           float64 // spot price / on-demand price
	QuietH, BaseH   float64 // billed GPU-hours without interruptions; of the on-demand baseline
	PerH            float64 // billed hours one interruption costs (of the group's wall time)
	BreakEven       float64 // interruptions per billed hour (see BreakEven)
}

// Scenario names the curve's share of kills and machines, as Group.Scenario does.
func (c Curve) Scenario() string { return scenario(c.NoNoticeShare, c.Machines) }

// SavingsAt is the curve's savings at rate interruptions per billed hour.
func (c Curve) SavingsAt(rate float64) float64 {
	return SavingsAt(rate, c.Ratio, c.QuietH, c.BaseH, c.PerH)
}

// Curves pools the groups that have a baseline by model, share of kills, machines and strategy,
// over their patterns, in the order of Groups.
func (s *Study) Curves() []Curve {
	type acc struct {
		c          Curve
		quiet, per []float64
		baseH      float64
	}
	var order []string
	byKey := map[string]*acc{}
	for _, g := range s.Groups {
		if g.Baseline == nil {
			continue
		}
		key := fmt.Sprintf("%s|%v|%d|%s", g.Model, g.NoNoticeShare, g.Machines, g.Strategy)
		a := byKey[key]
		if a == nil {
			a = &acc{c: Curve{Model: g.Model, Strategy: g.Strategy, NoNoticeShare: g.NoNoticeShare, Machines: g.Machines,
				Ratio: g.Prices.Ratio()},
				baseH: g.Baseline.GPUH.Mean}
			byKey[key] = a
			order = append(order, key)
		}
		for _, r := range g.Runs {
			if q, ok := perInterruption(r); ok {
				a.per = append(a.per, q/3600)
			}
			a.quiet = append(a.quiet, quietHours(r))
		}
	}
	out := make([]Curve, 0, len(order))
	for _, k := range order {
		a := byKey[k]
		a.c.QuietH, a.c.BaseH, a.c.PerH = NewStat(a.quiet).Mean, a.baseH, NewStat(a.per).Mean
		a.c.BreakEven = BreakEven(a.c.Ratio, a.c.QuietH, a.c.BaseH, a.c.PerH)
		out = append(out, a.c)
	}
	return out
}
