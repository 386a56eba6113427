package analysis

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"spottrain/internal/durable"
)

// Files that WriteReport writes besides the figures.
const (
	SummaryFile = "metrics_summary.csv" // one row per group: means and 95% CIs
	RunsFile    = "runs.csv"            // one row per run
	ReportFile  = "report.md"           // tables and figures
)

// SlowLimit is the Study.Slowdown above which a report names a run as slow.
const SlowLimit = 1.2

// ReportOptions say what a report names as its origin.
type ReportOptions struct {
	Command string    // the command that made it, shown in the report
	Now     time.Time // when; zero: left out
}

// WriteReport writes the study into dir (created if needed): the figures (PNG and SVG),
// metrics_summary.csv, runs.csv and report.md. Each file is replaced whole and durably, or not at
// all (see package durable); report.md comes last, so it never names a figure that was not
// written.
func WriteReport(dir string, s *Study, opt ReportOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	figs, err := WritePlots(dir, s)
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if err := writeFile(filepath.Join(dir, SummaryFile), func(w io.Writer) error { return writeSummaryCSV(w, s) }); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, RunsFile), func(w io.Writer) error { return writeRunsCSV(w, s) }); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, ReportFile), func(w io.Writer) error { return writeMarkdown(w, s, figs, opt) })
}

// writeFile replaces path with what write writes, whole and durably (see package durable). The
// errors of writing name path.
func writeFile(path string, write func(io.Writer) error) error {
	return durable.WriteWith(path, 0o644, write)
}

// statColumns are the aggregates of a group in metrics_summary.csv, each as NAME_mean, NAME_lo,
// NAME_hi.
var statColumns = []struct {
	name string
	get  func(g *Group) Stat
}{
	{"interruptions", func(g *Group) Stat { return g.Interruptions }},
	{"rate_per_hour", func(g *Group) Stat { return g.Rate }},
	{"wall_h", func(g *Group) Stat { return g.WallH }},
	{"billed_h", func(g *Group) Stat { return g.BilledH }},
	{"gpu_h", func(g *Group) Stat { return g.GPUH }},
	{"wasted_min", func(g *Group) Stat { return g.WastedMin }},
	{"checkpoint_min", func(g *Group) Stat { return g.CheckpointMin }},
	{"restart_min", func(g *Group) Stat { return g.RestartMin }},
	{"down_min", func(g *Group) Stat { return g.DownMin }},
	{"per_interruption_min", func(g *Group) Stat { return g.PerInterruptionMin }},
	{"cost_usd", func(g *Group) Stat { return g.CostUSD }},
	{"savings", func(g *Group) Stat { return g.Savings }},
	{"metric", func(g *Group) Stat { return g.Metric }},
}

func writeSummaryCSV(w io.Writer, s *Study) error {
	cw := csv.NewWriter(w)
	head := []string{"experiment", "model", "strategy", "pattern", "no_notice_share", "runs", "procs", "machines", "metric_name"}
	for _, c := range statColumns {
		head = append(head, c.name+"_mean", c.name+"_lo", c.name+"_hi")
	}
	head = append(head, "break_even_per_hour", "break_even_per_machine_hour")
	cw.Write(head)
	for _, g := range s.Groups {
		row := []string{g.Name, g.Model, g.Strategy, g.Pattern, num(g.NoNoticeShare), strconv.Itoa(len(g.Runs)),
			strconv.Itoa(g.Procs), strconv.Itoa(g.Machines), g.Runs[0].Metric}
		for _, c := range statColumns {
			st := c.get(g)
			if st.N == 0 {
				row = append(row, "", "", "")
				continue
			}
			row = append(row, num(st.Mean), num(st.Lo), num(st.Hi))
		}
		row = append(row, num(g.BreakEven), num(g.BreakEvenPerMachine()))
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

func writeRunsCSV(w io.Writer, s *Study) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"dir", "experiment", "index", "model", "strategy", "pattern", "no_notice_share", "completed",
		"time_scale", "steps", "redo_steps", "checkpoints", "notices", "kills", "grace_kills",
		"wall_s", "down_s", "billed_s", "startup_s", "restart_s", "checkpoint_s", "emergency_s", "wasted_s", "useful_s",
		"rate_per_hour", "cost_usd", "metric_name", "metric", "slowdown", "world", "gpu_h", "allreduce_efficiency", "machines"})
	for _, r := range s.Runs {
		metric := ""
		if r.Metric != "" {
			metric = num(r.MetricValue)
		}
		cw.Write([]string{r.Dir, r.Name, strconv.Itoa(r.Index), r.Model, r.Strategy, r.Pattern, num(r.NoNoticeShare),
			strconv.FormatBool(r.Completed), num(r.TimeScale), strconv.Itoa(r.Steps), strconv.Itoa(r.RedoSteps),
			strconv.Itoa(r.Checkpoints), strconv.Itoa(r.Notices), strconv.Itoa(r.Kills), strconv.Itoa(r.GraceKills),
			num(r.WallS), num(r.DownS), num(r.BilledS), num(r.StartupS), num(r.RestartS), num(r.CheckpointS),
			num(r.EmergencyS), num(r.WastedS), num(r.UsefulS), num(r.RatePerHour()), num(r.CostUSD()),
			r.Metric, metric, num(s.Slowdown[r]), strconv.Itoa(max(r.World, 1)), num(r.GPUHours()), optional(r.AllreduceEfficiency()),
			strconv.Itoa(r.Machines)})
	}
	cw.Flush()
	return cw.Error()
}

// optional is num(x), or "" for NaN (no value).
func optional(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return num(x)
}

// num formats a float for CSV: shortest round-trip form, "inf" or "nan".
func num(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case math.IsNaN(x):
		return "nan"
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// section is the groups of one model and scenario, with the baseline of that model.
type section struct {
	model, scenario string
	baseline        *Group
	groups          []*Group
}

// procs is the largest group size of the section's runs, its baseline's included.
func (sec *section) procs() int {
	n := 1
	for _, g := range append(slices.Clip(sec.groups), sec.baseline) {
		if g != nil {
			n = max(n, g.Procs)
		}
	}
	return n
}

// machines is the simulated job size of the section's groups (one: the scenario names it).
func (sec *section) machines() int {
	if len(sec.groups) > 0 {
		return sec.groups[0].Machines
	}
	return 1
}

// sections splits the study's groups by model and scenario, in the order of Groups.
func (s *Study) sections() []*section {
	var out []*section
	index := map[string]*section{}
	baselines := map[string]*Group{}
	for _, g := range s.Groups {
		if g.IsBaseline() {
			baselines[g.Model] = g
			continue
		}
		key := g.Model + "|" + g.Scenario()
		sec := index[key]
		if sec == nil {
			sec = &section{model: g.Model, scenario: g.Scenario(), baseline: g.Baseline}
			index[key] = sec
			out = append(out, sec)
		}
		sec.groups = append(sec.groups, g)
	}
	for model, b := range baselines {
		found := false
		for _, sec := range out {
			found = found || sec.model == model
		}
		if !found { // a baseline alone still shows in the report
			out = append(out, &section{model: model, scenario: "on demand only", baseline: b})
		}
	}
	return out
}

func writeMarkdown(w io.Writer, s *Study, figs []Figure, opt ReportOptions) error {
	p := &printer{w: w}
	completed := len(s.Runs) - len(s.Incomplete)
	p.f("# Spot versus on demand: checkpoint strategies under interruptions\n\n")
	if opt.Command != "" {
		p.f("Made by `%s`", opt.Command)
		if !opt.Now.IsZero() {
			p.f(" on %s", opt.Now.UTC().Format("2006-01-02"))
		}
		p.f(".\n")
	}
	p.f("%d runs (%d completed) in %d experiments.\n\n", len(s.Runs), completed, len(s.Groups))
	p.f("Times are spot time: the wall time of a run times its `interrupts.time_scale`, so a run that " +
		"took a minute here reads as the multi-hour spot job it stands for. Means are over the repetitions, " +
		"with a 95%% confidence interval (Student's t) after ±.\n\n")

	for _, sec := range s.sections() {
		writeSection(p, s, sec, figs)
	}
	for _, m := range s.Scales() {
		writeScale(p, m, figs)
	}

	if slow := s.SlowRuns(SlowLimit); len(slow) > 0 {
		p.f("## Runs that ran slow\n\nThese runs spent more than %.0f%% longer on the same useful work than the median run that trains the same thing: something else used the machine (or the VM was slow), and all their times and costs are inflated by as much.\n\n", 100*(SlowLimit-1))
		for _, r := range slow {
			p.f("- `%s`: %.2f× the median\n", r.Dir, s.Slowdown[r])
		}
		p.f("\n")
	}
	if stalled := s.StalledRuns(); len(stalled) > 0 {
		p.f("## Runs that stalled\n\nIn these runs, %d or more trainer starts in a row were interrupted before their first step: the interruptions came faster than a trainer starts, and the run made no progress meanwhile.\n\n", StallStarts)
		for _, r := range stalled {
			p.f("- `%s`: %d starts in a row\n", r.Dir, r.CutStarts)
		}
		p.f("\n")
	}
	if len(s.Incomplete) > 0 {
		p.f("## Runs that did not complete (left out above)\n\n")
		for _, r := range s.Incomplete {
			p.f("- `%s`: %d steps so far\n", r.Dir, r.Steps)
		}
		p.f("\n")
	}
	p.f("%s", method)
	p.f("Per-run numbers: [%s](%s); per experiment: [%s](%s).\n", RunsFile, RunsFile, SummaryFile, SummaryFile)
	return p.err
}

// writeSection writes the report's section of one model and scenario: its prices, the on-demand
// baseline, the table of its experiments, the break-even curves and its figures.
func writeSection(p *printer, s *Study, sec *section, figs []Figure) {
	p.f("## %s, %s\n\n", sec.model, sec.scenario)
	if len(sec.groups) > 0 {
		p.f("Prices: %s.\n\n", sec.groups[0].Prices)
	}
	billed := "h"
	if n := sec.procs(); n > 1 {
		billed = "GPU-h"
		p.f("Data-parallel groups of up to %d processes, one GPU each: billed time and cost are in GPU-hours, "+
			"the processes times the billed hours (a price is per GPU-hour); times lost stay the group's wall time.\n\n", n)
	}
	if m := sec.machines(); m > 1 {
		p.f("A job of %d simulated machines, each interrupted on its own by the pattern: any interruption stops every "+
			"machine and the job starts again on new ones, so the job is interrupted %d times as often as one machine. "+
			"Billed time is the job's, its cost the machines' GPUs times it. Break-even rates are per billed hour of the "+
			"job; per machine-hour they are %d times lower (the last column).\n\n", m, m, m)
	}
	if b := sec.baseline; b != nil {
		p.f("On demand (`%s`, %d runs): %s %s billed, $%s, %s %s.\n\n", b.Name, len(b.Runs),
			b.GPUH, billed, b.CostUSD, b.Runs[0].Metric, b.Metric)
	}
	if len(sec.groups) > 0 {
		p.f("| strategy | pattern | runs | interruptions | wasted (min) | checkpoint blocking (min) | restarts (min) | billed (%s) | cost ($) | savings | %s | break-even (/h) |\n",
			billed, sec.groups[0].Runs[0].Metric)
		p.f("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, g := range sec.groups {
			p.f("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", g.Strategy, g.Pattern, len(g.Runs),
				g.Interruptions, g.WastedMin, g.CheckpointMin, g.RestartMin, g.GPUH, g.CostUSD,
				percent(g.Savings), g.Metric, rate(g.BreakEven))
		}
		p.f("\n")
	}
	var curves []Curve
	for _, c := range s.Curves() {
		if c.Model == sec.model && c.Scenario() == sec.scenario {
			curves = append(curves, c)
		}
	}
	if len(curves) > 0 {
		perMachine := sec.machines() > 1
		p.f("Where spot stops paying, from the measured overheads pooled over the patterns:\n\n")
		p.f("| strategy | cost of one interruption (min billed) | savings without interruptions | break-even |%s\n|---|---|---|---|%s\n",
			cond(perMachine, " per machine |"), cond(perMachine, "---|"))
		for _, c := range curves {
			p.f("| %s | %.1f | %.0f%% | %s |%s\n", c.Strategy, c.PerH*60, 100*c.SavingsAt(0), breakEvenText(c.BreakEven),
				cond(perMachine, " "+breakEvenText(c.BreakEven/float64(c.Machines))+" |"))
		}
		p.f("\n")
	}
	for _, f := range figs {
		if f.Section == sec.model+"|"+sec.scenario && !f.Detail {
			p.figure(f)
		}
	}
	var details []Figure
	for _, f := range figs {
		if f.Section == sec.model+"|"+sec.scenario && f.Detail {
			details = append(details, f)
		}
	}
	if len(details) > 0 {
		p.f("<details><summary>Training curves of each experiment (first repetition)</summary>\n\n")
		for _, f := range details {
			p.figure(f)
		}
		p.f("</details>\n\n")
	}
}

// method explains the measurements at the end of a report.
const method = `## How the numbers are measured

From each run's events.jsonl (runner and trainers), config.yaml and metrics.json:

- **billed**: the time a VM existed: from the first trainer start to the end, less the time between
  an interruption and the next trainer start (a new VM being found; not billed, but it delays the
  result).
- **restarts**: billed time of trainers after the first from their process start to their first
  step (loading, restoring the checkpoint), and the whole life of a trainer killed before it began.
- **checkpoint blocking**: the time training waited for periodic, milestone and final checkpoints
  (the snapshot; the write to disk runs in the background).
- **wasted**: work lost to kills: from the moment a killed trainer held the state the next trainer
  resumed from, to its death. An interruption with notice wastes nothing: the trainer finishes its
  step, writes an emergency checkpoint and exits.
- **cost**: billed GPU-hours times the spot price per GPU-hour (the on-demand price for the
  baseline); a run of a data-parallel group bills its processes (one GPU each) times its billed
  hours, each trainer at its own group size; **savings**
  = 1 - cost / the baseline's mean cost.
- **break-even**: with λ interruptions per billed hour, each costing q billed hours (restart, lost
  work, emergency checkpoint), a job that bills Q hours without interruptions bills Q / (1 - λq);
  spot pays while (spot price / on-demand price) · Q / (1 - λq) is below the on-demand hours, that
  is below λ* = (1 - ratio · Q / on-demand hours) / q.

`

func breakEvenText(be float64) string {
	switch {
	case math.IsInf(be, 1):
		return "never (interruptions cost nothing)"
	case be == 0:
		return "spot never pays"
	case math.IsNaN(be):
		return "no baseline"
	}
	return fmt.Sprintf("%.2f interruptions per hour (one every %s)", be, (time.Duration(3600/be) * time.Second).Round(time.Minute))
}

// cond is s when ok, else "".
func cond(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

func rate(be float64) string {
	switch {
	case math.IsInf(be, 1):
		return "∞"
	case math.IsNaN(be):
		return "-"
	}
	return fmt.Sprintf("%.2f", be)
}

func percent(s Stat) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return fmt.Sprintf("%.0f%%", 100*s.Mean)
	}
	return fmt.Sprintf("%.0f%% ± %.0f", 100*s.Mean, 100*s.Half())
}

// printer writes formatted text and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) figure(f Figure) {
	p.f("### %s\n\n![%s](%s.png)\n\n%s ([SVG](%s.svg))\n\n", f.Title, strings.ReplaceAll(f.Title, "]", ""), f.Name, f.Caption, f.Name)
}
