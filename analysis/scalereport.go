package analysis

import (
	"fmt"
	"math"
	"strings"

	"spottrain/preemption"
)

// writeScale writes the report's section of a Scale: the fit, the model against the runs at each
// size measured, the model as the job grows, and the figure.
func writeScale(p *printer, m *Scale, figs []Figure) {
	k := m.NoNoticeShare
	p.f("## %s, %s: the job as it grows\n\n", m.Model, scenario(k, 1))
	p.f("Runs at %s machines (interrupts.machines), each machine interrupted on its own at %s per machine-hour on "+
		"average; a job of N machines is interrupted N times as often. The model (see `analysis.Scale`) prices one "+
		"interruption of a job of N machines at q(N) = R(N) + %.2f·E + %.2f·L(N) billed hours of every machine, fitted "+
		"to these runs:\n\n", joinInts(m.Sizes), rateText(m.RateH), 1-k, k)
	measured := make([]string, len(m.Sizes))
	for i, n := range m.Sizes {
		measured[i] = fmt.Sprintf("%.1f at %d", 60*m.RestartH[i], n)
	}
	p.f("- restart R(N) = %.2f + %.2f·log2(N) min (least squares over the sizes, measured %s; a trainer cut before its "+
		"first step counts whole)\n", 60*m.R0, 60*m.R1, strings.Join(measured, ", "))
	p.f("- emergency checkpoint E = %.2f min per notice\n", 60*m.EmergencyH)
	for _, ss := range m.Strategies {
		p.f("- %s: L = %.1f min lost per kill at one machine's interval%s; a quiet spot job bills %.3f× the on-demand hours\n",
			ss.Strategy, 60*ss.LostH, intervalNote(m, ss), ss.Quiet)
	}
	writeScaleCheck(p, m)
	writeScaleGrowth(p, m)
	for _, f := range figs {
		if f.Section == scaleSection(m) {
			p.figure(f)
		}
	}
}

// writeScaleCheck writes the table of the model against the runs, at each size measured.
func writeScaleCheck(p *printer, m *Scale) {
	p.f("\nThe model against the runs, at the rate each size saw:\n\n")
	p.f("| strategy | machines | runs | interruptions per machine-hour | savings, runs | savings, model | break-even per machine-hour, runs | model |\n")
	p.f("|---|---|---|---|---|---|---|---|\n")
	for _, ss := range m.Strategies {
		for _, pt := range ss.Points {
			p.f("| %s | %d | %d | %.2f | %s | %s | %s | %s |\n", ss.Strategy, pt.Machines, pt.Runs, pt.RateH, percent(pt.Savings),
				savingsText(m.SavingsAt(ss, pt.Machines, pt.RateH)), rate(pt.BreakEven), rate(m.BreakEvenPerMachine(ss, pt.Machines)))
		}
	}
}

// writeScaleGrowth writes the tables of the model from 1 to ScaleMaxMachines machines.
func writeScaleGrowth(p *printer, m *Scale) {
	sizes := scaleSizes()
	head := "| strategy |"
	for _, n := range sizes {
		head += fmt.Sprintf(" %d |", n)
	}
	p.f("\nThe model as the job grows, each machine interrupted at %s per hour: savings against on demand by the "+
		"number of machines, and where spot stops paying; \"one restart\": the same with the restart of one machine at "+
		"every size (machines that start again in parallel).\n\n%s stops paying at |\n|---|%s\n", rateText(m.RateH), head,
		strings.Repeat("---|", len(sizes)+1))
	variants := []struct {
		name string
		m    *Scale
	}{{"", m}, {", one restart", m.OneRestart()}}
	for _, v := range variants {
		for _, ss := range m.Strategies {
			p.f("| %s%s |", ss.Strategy, v.name)
			for _, n := range sizes {
				p.f(" %s |", savingsText(v.m.SavingsAt(ss, n, m.RateH)))
			}
			p.f(" %s |\n", stopsAt(v.m.StopsPaying(ss, m.RateH)))
		}
	}
	writeStopsAt(p, m, variants[1].m)
	p.f("\nBreak-even interruptions per machine-hour, by the number of machines:\n\n%s\n|---|%s\n", head,
		strings.Repeat("---|", len(sizes)))
	for _, v := range variants {
		for _, ss := range m.Strategies {
			p.f("| %s%s |", ss.Strategy, v.name)
			for _, n := range sizes {
				p.f(" %s |", rate(v.m.BreakEvenPerMachine(ss, n)))
			}
			p.f("\n")
		}
	}
	p.f("\n")
}

// stopsRates are the rates per machine-hour at which the report says where spot stops paying,
// besides the runs' own.
var stopsRates = []float64{0.3, 0.1, 0.03, 0.01}

// writeStopsAt writes the table of where spot stops paying at stopsRates, with m and with one
// machine's restart at every size.
func writeStopsAt(p *printer, m, one *Scale) {
	p.f("\nWhere spot stops paying at other rates per machine-hour (restart as fitted / one machine's):\n\n| strategy |")
	for _, r := range stopsRates {
		p.f(" %s |", rateText(r))
	}
	p.f("\n|---|%s\n", strings.Repeat("---|", len(stopsRates)))
	for _, ss := range m.Strategies {
		p.f("| %s |", ss.Strategy)
		for _, r := range stopsRates {
			p.f(" %s / %s |", stopsAt(m.StopsPaying(ss, r)), stopsAt(one.StopsPaying(ss, r)))
		}
		p.f("\n")
	}
}

// intervalNote says how the strategy's interval changes with the job's size.
func intervalNote(m *Scale, ss *StrategyScale) string {
	if ss.Strategy != "adaptive" || ss.IntervalH[1] <= 0 {
		return " (its interval does not change with the job)"
	}
	return fmt.Sprintf(" (%.1f min), scaled with Daly's interval for C = %.3f s: %.1f min at 8 machines, %.1f at 256",
		60*m.interval(ss, 1, m.RateH), 3600*ss.BlockingH, 60*m.interval(ss, 8, m.RateH), 60*m.interval(ss, 256, m.RateH))
}

// savingsText is a modelled savings for a table: a percentage, or "never ends" at -Inf.
func savingsText(x float64) string {
	if math.IsInf(x, -1) {
		return "never ends"
	}
	return fmt.Sprintf("%.0f%%", 100*x)
}

// stopsAt is StopsPaying's n for a table.
func stopsAt(n int) string {
	if n == 0 {
		return fmt.Sprintf("over %d", preemption.MaxMachines)
	}
	return fmt.Sprint(n)
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ", ")
}
