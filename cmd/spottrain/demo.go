package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"spottrain/analysis"
)

func runDemo(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("demo", "demo [--experiment NAME] [--set key=value]...", stdout)
	cf := addConfigFlags(fs, "demo")
	cf.experiment = "lstm-fixed-poisson"
	fs.Lookup("experiment").DefValue = cf.experiment
	runsDir := fs.String("runs-dir", "runs", "where the run dir goes: `DIR`/NAME/rep-0")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cf.check(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo: %s, a simulated spot VM that is interrupted at random, with and without notice;\n"+
		"the trainer is started again after each interruption and resumes from its newest checkpoint.\n\n", cf.experiment)
	o, err := runOne(ctx, &runJob{flags: cf, runsDir: *runsDir, out: stdout})
	if err != nil {
		return err
	}
	if o.skipped {
		if err := printFinished(stdout, o.runDir); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "\n[run] completed in %s wall, %s of spot time: %s\n", o.wall.Round(time.Second/10), o.spot().Round(time.Minute), o.describe())
	}
	v, err := analysis.Verify(o.runDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verify %s: %d trainer starts, %d stops with notice, %d kills, %d steps redone after kills\n",
		o.runDir, v.Starts, v.Notice, v.Killed, v.Redo)
	for _, p := range v.Problems {
		fmt.Fprintf(stdout, "  problem: %s\n", p)
	}
	if !v.OK() {
		return fmt.Errorf("demo: the run is not sound")
	}
	fmt.Fprintf(stdout, "sound: every interruption was followed by a resume from the newest committed checkpoint\n")
	m, err := analysis.ReadMetrics(o.runDir)
	if err != nil {
		return err
	}
	if _, ok := m.Test["top1"]; !ok {
		fmt.Fprintf(stdout, "\nthe forecaster it trained (spottrain evaluate %s: every score, by horizon, hour and month, with figures):\n", o.runDir)
		printForecastScores(stdout, m.Test, "test split")
	}
	return nil
}

// printFinished prints the result of the completed run in runDir, from its metrics.json: the test
// scores that its trainer printed when it finished (for a ResNet, top-1 and top-5 accuracy).
func printFinished(stdout io.Writer, runDir string) error {
	m, err := analysis.ReadMetrics(runDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s completed before (remove it to train again): %s, %d steps; its test scores (%s):\n",
		runDir, m.Name, m.Steps, filepath.Join(runDir, analysis.MetricsFile))
	if top1, ok := m.Test["top1"]; ok {
		fmt.Fprintf(stdout, "top-1 %.2f%%, top-5 %.2f%%\n", 100*top1, 100*m.Test["top5"])
	} else {
		printForecastScores(stdout, m.Test, "test split")
	}
	fmt.Fprintln(stdout)
	return nil
}
