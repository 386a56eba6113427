package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"spottrain/analysis"
	"spottrain/configs"
	"spottrain/train"
)

func runAnalyze(args []string, stdout io.Writer) error {
	fs := newFlagSet("analyze", "analyze RUNS_DIR [--out DIR] [--gpu NAME] [--spot-price USD --on-demand-price USD]", stdout)
	out := fs.String("out", "report", "where the report goes: `DIR`/report.md, its figures (PNG, SVG), metrics_summary.csv and runs.csv")
	gpu := fs.String("gpu", "", "price GPU-hours as `NAME` of the built-in list ("+strings.Join(configs.GPUs(), ", ")+"); default: the runs' cost.gpu")
	spot := fs.Float64("spot-price", 0, "spot price, `USD` per GPU-hour (overrides the GPU's list price)")
	onDemand := fs.Float64("on-demand-price", 0, "on-demand price, `USD` per GPU-hour (overrides the GPU's list price)")
	root, err := parseRunDir(fs, args, "RUNS_DIR")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"--spot-price", *spot}, {"--on-demand-price", *onDemand}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return usageError{fmt.Sprintf("analyze: %s must be a price > 0 (got %v)", f.name, f.v)}
		}
	}
	if *gpu != "" {
		if _, err := flagPrices(configs.Prices{}, *gpu, *spot, *onDemand); err != nil {
			return err
		}
	}
	dirs, err := analysis.FindRuns(root)
	if err != nil {
		return &train.InputError{Err: err}
	}
	var runs []*analysis.RunMetrics
	for _, d := range dirs {
		m, err := analysis.Measure(d)
		if errors.Is(err, analysis.ErrNoRun) {
			fmt.Fprintf(stdout, "skipping %s: no trainer has started there yet\n", d)
			if r, err := analysis.ReadRun(d); err == nil {
				if n, _ := r.CutStarts(); n >= analysis.StallStarts {
					fmt.Fprintf(stdout, "warning: %s: %s\n", d, analysis.StallNote(n))
				}
			}
			continue
		}
		if err != nil {
			return &train.InputError{Err: fmt.Errorf("run %s: %w", d, err)}
		}
		runs = append(runs, m)
	}
	if len(runs) == 0 {
		return &train.InputError{Err: fmt.Errorf("no run under %s has started a trainer", root)}
	}
	if *gpu != "" || *spot != 0 || *onDemand != 0 {
		for _, r := range runs {
			if r.Prices, err = flagPrices(r.Prices, *gpu, *spot, *onDemand); err != nil {
				return err
			}
		}
	}
	s := analysis.NewStudy(runs)
	cmd := "spottrain analyze " + root + " --out " + *out
	for _, f := range []struct{ flag, val string }{{"--gpu", *gpu}, {"--spot-price", fmtPrice(*spot)}, {"--on-demand-price", fmtPrice(*onDemand)}} {
		if f.val != "" {
			cmd += " " + f.flag + " " + f.val
		}
	}
	if err := analysis.WriteReport(*out, s, analysis.ReportOptions{Command: cmd, Now: time.Now()}); err != nil {
		return err
	}
	printStudy(stdout, s)
	for _, r := range s.StalledRuns() {
		fmt.Fprintf(stdout, "warning: %s: %s\n", r.Dir, analysis.StallNote(r.CutStarts))
	}
	for _, r := range s.SlowRuns(analysis.SlowLimit) {
		fmt.Fprintf(stdout, "warning: %s ran %.2f× as long as the median for the same work: its times and cost are inflated\n", r.Dir, s.Slowdown[r])
	}
	fmt.Fprintf(stdout, "\n%d runs (%d not completed, left out)\nreport: %s\n",
		len(runs), len(s.Incomplete), filepath.Join(*out, analysis.ReportFile))
	return nil
}

func fmtPrice(p float64) string {
	if p == 0 {
		return ""
	}
	return fmt.Sprint(p)
}

// flagPrices are a run's prices with the flags' on top: --gpu's list prices instead of the run's,
// then --spot-price and --on-demand-price.
func flagPrices(run configs.Prices, gpu string, spot, onDemand float64) (configs.Prices, error) {
	cc := configs.CostConfig{GPU: run.GPU, SpotPerHour: run.SpotPerHour, OnDemandPerHour: run.OnDemandPerHour,
		Source: run.Source, AsOf: run.AsOf}
	if gpu != "" {
		cc = configs.CostConfig{GPU: gpu}
	}
	if spot != 0 || onDemand != 0 {
		cc.Source, cc.AsOf = "the command line", time.Now().UTC().Format("2006-01-02")
	}
	if spot != 0 {
		cc.SpotPerHour = spot
	}
	if onDemand != 0 {
		cc.OnDemandPerHour = onDemand
	}
	p, err := cc.Prices()
	var ce *configs.Error
	if errors.As(err, &ce) {
		flag := map[string]string{"cost.gpu": "--gpu", "cost.spot_per_hour": "--spot-price", "cost.on_demand_per_hour": "--on-demand-price"}[ce.Key]
		msg := strings.NewReplacer("cost.spot_per_hour", "--spot-price", "cost.on_demand_per_hour", "--on-demand-price",
			"cost.gpu", "--gpu").Replace(ce.Msg)
		return p, usageError{fmt.Sprintf("analyze: %s: %s", flag, msg)}
	}
	return p, err
}

// printStudy prints a line per experiment. Where a run had a group of processes, PROCS is the
// largest group size of an experiment's runs and GPU-H their mean billed GPU-hours (processes ×
// billed hours), which the cost is priced on. Where a job had several simulated machines,
// MACHINES is their number, BREAK-EVEN is per billed hour of the job and BREAK-EVEN/MACHINE per
// machine-hour.
func printStudy(w io.Writer, s *analysis.Study) {
	groups := slices.ContainsFunc(s.Groups, func(g *analysis.Group) bool { return g.Procs > 1 })
	machines := slices.ContainsFunc(s.Groups, func(g *analysis.Group) bool { return g.Machines > 1 })
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EXPERIMENT\tKILLS\tRUNS\t"+cond(machines, "MACHINES\t")+cond(groups, "PROCS\tGPU-H\t")+
		"INTERRUPTIONS\tWASTED (MIN)\tCOST ($)\tSAVINGS\tMETRIC\tBREAK-EVEN (/H)"+cond(machines, "\tBREAK-EVEN/MACHINE (/H)"))
	for _, g := range s.Groups {
		kills, savings, be, bm := "-", "-", "-", "-"
		if !g.IsBaseline() {
			kills = fmt.Sprintf("%.0f%%", 100*g.NoNoticeShare)
		}
		if g.Savings.N > 0 {
			savings = fmt.Sprintf("%.0f%%", 100*g.Savings.Mean)
		}
		if !math.IsNaN(g.BreakEven) {
			be, bm = fmt.Sprintf("%.2f", g.BreakEven), fmt.Sprintf("%.2f", g.BreakEvenPerMachine())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s%s%.1f\t%.1f\t%.3f\t%s\t%s=%.4g\t%s%s\n", g.Name, kills, len(g.Runs),
			cond(machines, fmt.Sprintf("%d\t", g.Machines)), cond(groups, fmt.Sprintf("%d\t%.3g\t", g.Procs, g.GPUH.Mean)),
			g.Interruptions.Mean, g.WastedMin.Mean, g.CostUSD.Mean, savings, g.Runs[0].Metric, g.Metric.Mean, be,
			cond(machines, "\t"+bm))
	}
	tw.Flush()
}
