package analysis

import (
	"cmp"
	"math"
	"slices"
	"time"

	"spottrain/checkpoint"
	"spottrain/preemption"
)

// Scale is the model of a job as it grows to more machines, for one model and share of kills,
// fitted to the runs of a study measured at several machine counts (interrupts.machines). Each
// machine is interrupted on its own at a rate λ per machine-hour, and any interruption stops the
// job, so a job of N machines is interrupted at N·λ per billed hour; each interruption costs it
// q(N) billed hours, of every machine:
//
//	q(N) = R(N) + (1 - k)·E + k·L(N)
//
// with k the share of kills, R(N) = R0 + R1·log2(N) the restart (new processes, rendezvous,
// restore; a trainer cut before its first step whole), E the emergency checkpoint after a notice
// and L(N) the work a kill loses: the strategy's fitted loss per kill at its interval of one
// machine, scaled by its interval at N (fixed and milestone keep theirs; adaptive's is Daly's for
// its blocking C and the job's time between kills, 1/(k·N·λ), within its bounds). Savings and the
// break-even are then those of BreakEven and SavingsAt, on the hours of a quiet spot job over
// the on-demand job's (Quiet, which does not depend on N: both bill the same machines).
type Scale struct {
	Model         string
	NoNoticeShare float64
	Ratio         float64 // spot price / on-demand price
	Sizes         []int   // the machine counts measured
	// R0 and R1 are the restart's fit, in billed hours: R(N) = R0 + R1·log2(N), least squares
	// over the sizes (each weighted by its interruptions).
	R0, R1 float64
	// RestartH is the restart the runs measured per interruption at each of Sizes, in hours.
	RestartH   []float64
	EmergencyH float64 // billed hours from a notice to the job's exit, per notice
	RateH      float64 // the interruptions the runs saw per machine-hour (mean over runs)
	Strategies []*StrategyScale
}

// StrategyScale is a Scale's part of one checkpoint strategy.
type StrategyScale struct {
	Strategy string
	// LostH is the work a kill loses, in hours, at the interval of one machine: the mean loss per
	// kill of the runs, each scaled to one machine's interval.
	LostH float64
	Quiet float64 // billed hours of a quiet spot job over the on-demand job's, mean over runs
	// BlockingH is the time a checkpoint blocks training (hours, mean); IntervalH the strategy's
	// bounds (hours): fixed's interval twice, adaptive's [min, max], zero for milestone.
	BlockingH float64
	IntervalH [2]float64
	Points    []ScalePoint // measured, by machines
}

// ScalePoint is what the runs of one strategy measured at one machine count.
type ScalePoint struct {
	Machines int
	Runs     int
	RateH    float64 // interruptions per machine-hour, mean over the runs
	Savings  Stat
	// BreakEven is the measured break-even per machine-hour: that of the study's Curve of these
	// runs, divided by the machines.
	BreakEven float64
}

// Scales fits a Scale to each model and share of kills of the study whose strategies were
// measured at two machine counts or more against baselines of as many machines, in study order.
func (s *Study) Scales() []*Scale {
	var out []*Scale
	for _, sc := range s.scaleSets() {
		if sc.fit(s) {
			out = append(out, sc.Scale)
		}
	}
	return out
}

// scaleSet is the runs of a Scale while it is fitted.
type scaleSet struct {
	*Scale
	groups []*Group // with a baseline
}

// scaleSets gathers the groups that have a baseline by model and share of kills.
func (s *Study) scaleSets() []*scaleSet {
	var sets []*scaleSet
	for _, g := range s.Groups {
		if g.Baseline == nil || len(g.Runs) == 0 {
			continue
		}
		i := slices.IndexFunc(sets, func(set *scaleSet) bool {
			return set.Model == g.Model && set.NoNoticeShare == g.NoNoticeShare
		})
		if i < 0 {
			sets = append(sets, &scaleSet{Scale: &Scale{Model: g.Model, NoNoticeShare: g.NoNoticeShare, Ratio: g.Prices.Ratio()}})
			i = len(sets) - 1
		}
		sets[i].groups = append(sets[i].groups, g)
		if !slices.Contains(sets[i].Sizes, g.Machines) {
			sets[i].Sizes = append(sets[i].Sizes, g.Machines)
		}
	}
	return sets
}

// fit fits the set's Scale; false with fewer than two sizes or no interruption.
func (set *scaleSet) fit(s *Study) bool {
	if len(set.Sizes) < 2 {
		return false
	}
	slices.Sort(set.Sizes)
	var notices, emergencyS, rates []float64
	restart := map[int][2]float64{} // by machines: restart seconds, interruptions
	for _, g := range set.groups {
		for _, r := range g.Runs {
			acc := restart[r.Machines]
			restart[r.Machines] = [2]float64{acc[0] + r.RestartS, acc[1] + float64(r.Interruptions())}
			notices, emergencyS = append(notices, float64(r.Notices)), append(emergencyS, r.EmergencyS)
			rates = append(rates, r.RatePerHour()/float64(r.Machines))
		}
	}
	if sum(notices) > 0 {
		set.EmergencyH = sum(emergencyS) / sum(notices) / 3600
	}
	set.RateH = NewStat(rates).Mean
	var ok bool
	if set.R0, set.R1, ok = fitRestart(restart); !ok {
		return false
	}
	for _, n := range set.Sizes {
		set.RestartH = append(set.RestartH, restart[n][0]/max(restart[n][1], 1)/3600)
	}
	for _, st := range strategiesOf(set.groups) {
		set.Strategies = append(set.Strategies, set.fitStrategy(s, st))
	}
	return true
}

// fitRestart fits R0 + R1·log2(N) to the restart hours per interruption at each N (value:
// seconds, interruptions), weighted by interruptions; false without two sizes that had any.
func fitRestart(byN map[int][2]float64) (r0, r1 float64, ok bool) {
	var sw, sx, sy, sxx, sxy float64
	sizes := 0
	for n, v := range byN {
		if v[1] == 0 {
			continue
		}
		sizes++
		w, x, y := v[1], math.Log2(float64(n)), v[0]/v[1]/3600
		sw, sx, sy, sxx, sxy = sw+w, sx+w*x, sy+w*y, sxx+w*x*x, sxy+w*x*y
	}
	if sizes < 2 {
		return 0, 0, false
	}
	r1 = (sw*sxy - sx*sy) / (sw*sxx - sx*sx)
	return (sy - r1*sx) / sw, r1, true
}

// strategiesOf lists the strategies of groups, in strategy order.
func strategiesOf(groups []*Group) []string {
	var out []string
	for _, g := range groups {
		if !slices.Contains(out, g.Strategy) {
			out = append(out, g.Strategy)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(strategyRank(a), strategyRank(b)) })
	return out
}

func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// fitStrategy fits the part of strategy st, and gathers its measured points.
func (set *scaleSet) fitStrategy(s *Study, st string) *StrategyScale {
	ss := &StrategyScale{Strategy: st}
	var lost, kills, quiet, blocked, checkpoints []float64
	for _, g := range set.groups {
		if g.Strategy != st {
			continue
		}
		for _, r := range g.Runs {
			if ss.IntervalH == [2]float64{} {
				ss.IntervalH = [2]float64{r.IntervalS[0] / 3600, r.IntervalS[1] / 3600}
			}
			blocked, checkpoints = append(blocked, r.CheckpointS), append(checkpoints, float64(r.Checkpoints))
			quiet = append(quiet, quietHours(r)/g.Baseline.GPUH.Mean)
		}
	}
	if sum(checkpoints) > 0 {
		ss.BlockingH = sum(blocked) / sum(checkpoints) / 3600
	}
	ss.Quiet = NewStat(quiet).Mean
	for _, g := range set.groups {
		for _, r := range g.Runs {
			if g.Strategy == st && r.Kills > 0 {
				scale := set.interval(ss, 1, set.RateH) / set.interval(ss, r.Machines, set.RateH)
				lost, kills = append(lost, r.WastedS/3600*scale), append(kills, float64(r.Kills))
			}
		}
	}
	if sum(kills) > 0 {
		ss.LostH = sum(lost) / sum(kills)
	}
	ss.Points = set.points(s, st)
	return ss
}

// points are the measured points of strategy st, by machines.
func (set *scaleSet) points(s *Study, st string) []ScalePoint {
	var out []ScalePoint
	for _, n := range set.Sizes {
		var rates, savings []float64
		for _, g := range set.groups {
			if g.Strategy != st || g.Machines != n {
				continue
			}
			for _, r := range g.Runs {
				rates, savings = append(rates, r.RatePerHour()/float64(n)), append(savings, g.SavingsOf(r))
			}
		}
		if len(rates) == 0 {
			continue
		}
		p := ScalePoint{Machines: n, Runs: len(rates), RateH: NewStat(rates).Mean, Savings: NewStat(savings), BreakEven: math.NaN()}
		for _, c := range s.Curves() {
			if c.Model == set.Model && c.NoNoticeShare == set.NoNoticeShare && c.Machines == n && c.Strategy == st {
				p.BreakEven = c.BreakEven / float64(n)
			}
		}
		out = append(out, p)
	}
	return out
}

// interval is the strategy's checkpoint interval, in hours, for a job of n machines each
// interrupted at rate per hour: adaptive's Daly interval for its blocking and the job's mean time
// between kills, within its bounds; the others' does not change (1 stands for any).
func (m *Scale) interval(ss *StrategyScale, n int, rate float64) float64 {
	if ss.Strategy != "adaptive" || ss.IntervalH[1] <= 0 {
		return 1
	}
	kills := m.NoNoticeShare * float64(n) * rate
	if kills <= 0 {
		return ss.IntervalH[1]
	}
	hour := float64(time.Hour)
	tau := checkpoint.DalyInterval(time.Duration(ss.BlockingH*hour), time.Duration(hour/kills))
	return min(max(float64(tau)/hour, ss.IntervalH[0]), ss.IntervalH[1])
}

// OneRestart is m with the restart of one machine at every size, R(N) = R(1): machines that
// start again in parallel in the time one takes, as a cloud's can, where the machine of these
// runs started every rank on the same cores.
func (m *Scale) OneRestart() *Scale {
	c := *m
	c.R1 = 0
	return &c
}

// PerInterruptionH is q(N): the billed hours one interruption costs a job of n machines, each
// interrupted at rate per hour.
func (m *Scale) PerInterruptionH(ss *StrategyScale, n int, rate float64) float64 {
	restart := max(m.R0+m.R1*math.Log2(float64(n)), 0)
	lost := ss.LostH * m.interval(ss, n, rate) / m.interval(ss, 1, m.RateH)
	return restart + (1-m.NoNoticeShare)*m.EmergencyH + m.NoNoticeShare*lost
}

// quiet is the hours of a quiet spot job over the on-demand job's at n machines and rate: the
// measured one, plus what adaptive's shorter interval blocks in addition.
func (m *Scale) quiet(ss *StrategyScale, n int, rate float64) float64 {
	if ss.Strategy != "adaptive" {
		return ss.Quiet
	}
	return ss.Quiet + ss.BlockingH/m.interval(ss, n, rate) - ss.BlockingH/m.interval(ss, 1, m.RateH)
}

// SavingsAt is the model's savings of a job of n machines, each interrupted at rate per hour.
func (m *Scale) SavingsAt(ss *StrategyScale, n int, rate float64) float64 {
	return SavingsAt(float64(n)*rate, m.Ratio, m.quiet(ss, n, rate), 1, m.PerInterruptionH(ss, n, rate))
}

// BreakEvenPerMachine is the interruption rate per machine-hour at which a job of n machines
// costs as much on spot as on demand (+Inf when interruptions cost nothing; 0 when spot never
// pays): the root of SavingsAt, which falls as the rate grows, found by bisection.
func (m *Scale) BreakEvenPerMachine(ss *StrategyScale, n int) float64 {
	if m.SavingsAt(ss, n, 0) <= 0 {
		return 0
	}
	lo, hi := 0.0, 1.0
	for m.SavingsAt(ss, n, hi) > 0 {
		if lo, hi = hi, 2*hi; hi > 1e9 {
			return math.Inf(1)
		}
	}
	for range 100 {
		mid := (lo + hi) / 2
		if m.SavingsAt(ss, n, mid) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// StopsPaying is the smallest number of machines, up to preemption.MaxMachines, at which spot
// no longer pays when each machine is interrupted at rate per hour; 0 if it pays at every size.
func (m *Scale) StopsPaying(ss *StrategyScale, rate float64) int {
	for n := 1; n <= preemption.MaxMachines; n++ {
		if m.SavingsAt(ss, n, rate) <= 0 {
			return n
		}
	}
	return 0
}
