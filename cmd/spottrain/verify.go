package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"spottrain/analysis"
	"spottrain/configs"
	"spottrain/train"
)

func runVerify(args []string, stdout io.Writer) error {
	fs := newFlagSet("verify", "verify RUNS_DIR [--exact]", stdout)
	exact := fs.Bool("exact", false, "fail a run whose final weights differ from its on-demand baseline's (expected equal on the CPU)")
	root, err := parseRunDir(fs, args, "RUNS_DIR")
	if err != nil {
		return err
	}
	dirs, err := analysis.FindRuns(root)
	if err != nil {
		return &train.InputError{Err: err}
	}
	type row struct {
		v       *analysis.Verdict
		weights string
	}
	var rows []row
	// training hash and group sizes -> the dir of an on-demand run that completed: a group's sums
	// of gradients equal one process's only to float tolerance, so a run is compared with a
	// baseline of its own group sizes.
	baselines := map[string]string{}
	info := map[string]runInfo{}
	for _, d := range dirs {
		v, err := analysis.Verify(d)
		if err != nil {
			v = &analysis.Verdict{Dir: d, Problems: []string{err.Error()}}
		}
		ri := readRunInfo(d, v)
		info[d] = ri
		if key := ri.training + "|" + procs(v.Worlds); ri.pattern == "none" && ri.digest != "" && baselines[key] == "" {
			baselines[key] = d
		}
		rows = append(rows, row{v: v})
	}
	bad := 0
	for i := range rows {
		r := &rows[i]
		ri := info[r.v.Dir]
		base := baselines[ri.training+"|"+procs(r.v.Worlds)]
		switch {
		case ri.digest == "":
			r.weights = "-"
		case base == r.v.Dir:
			r.weights = "baseline"
		case base == "":
			r.weights = "no baseline"
		case info[base].digest == ri.digest:
			r.weights = "= baseline"
		default:
			r.weights = "differ"
			if *exact {
				r.v.Problems = append(r.v.Problems, "final weights differ from the on-demand baseline's")
			}
		}
		if !r.v.OK() {
			bad++
		}
	}

	// PROCS only where a run had a group: the table of one-process runs is as it always was.
	groups := slices.ContainsFunc(rows, func(r row) bool { return !slices.Equal(r.v.Worlds, []int{1}) && len(r.v.Worlds) > 0 })
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTATUS\t"+cond(groups, "PROCS\t")+"STARTS\tNOTICE\tKILLED\tREDO\tSTEP\tWEIGHTS")
	for _, r := range rows {
		status := "ok"
		if !r.v.OK() {
			status = "FAIL"
		}
		rel, err := filepath.Rel(root, r.v.Dir)
		if err != nil || rel == "." {
			rel = r.v.Dir
		}
		fmt.Fprintf(tw, "%s\t%s\t%s%d\t%d\t%d\t%d\t%d\t%s\n", rel, status, cond(groups, procs(r.v.Worlds)+"\t"), r.v.Starts,
			r.v.Notice, r.v.Killed, r.v.Redo, r.v.FinalStep, r.weights)
	}
	tw.Flush()
	for _, r := range rows {
		for _, n := range r.v.Notes {
			fmt.Fprintf(stdout, "note: %s: %s\n", r.v.Dir, n)
		}
		if n := r.v.PeerLost; n > 0 {
			fmt.Fprintf(stdout, "note: %s: %d trainer group(s) left when a peer stopped responding (exit 75, nothing saved: their steps since the last checkpoint are in REDO)\n", r.v.Dir, n)
		}
	}
	if bad == 0 {
		fmt.Fprintf(stdout, "all %d runs are sound\n", len(rows))
		return nil
	}
	fmt.Fprintf(stdout, "\n%d of %d runs failed:\n", bad, len(rows))
	for _, r := range rows {
		for _, p := range r.v.Problems {
			fmt.Fprintf(stdout, "  %s: %s\n", r.v.Dir, p)
		}
		if len(r.v.Problems) == 0 && !r.v.OK() {
			fmt.Fprintf(stdout, "  %s: not completed\n", r.v.Dir)
		}
	}
	return fmt.Errorf("verify: %d of %d runs failed", bad, len(rows))
}

// procs is the PROCS column: the processes of each trainer's group, "2" or "2→1" when a resume
// changed the size; "-" when no trainer started.
func procs(worlds []int) string {
	if len(worlds) == 0 {
		return "-"
	}
	s := make([]string, len(worlds))
	for i, w := range worlds {
		s[i] = strconv.Itoa(w)
	}
	return strings.Join(s, "→")
}

// cond is s if ok, else "".
func cond(ok bool, s string) string {
	if ok {
		return s
	}
	return ""
}

// runInfo is what verify compares across runs.
type runInfo struct {
	training string // configs.Config.TrainingHash
	pattern  string
	digest   string // of the final weights; "" if the run did not complete
}

func readRunInfo(dir string, v *analysis.Verdict) runInfo {
	cfg, err := configs.ReadSaved(filepath.Join(dir, "config.yaml"))
	if err != nil {
		v.Problems = append(v.Problems, err.Error())
		return runInfo{}
	}
	ri := runInfo{training: cfg.TrainingHash(), pattern: cfg.Interrupts.Pattern}
	if v.Final == nil {
		return ri
	}
	if ri.digest, err = train.WeightsDigest(v.Final); err != nil {
		v.Problems = append(v.Problems, fmt.Sprintf("final weights: %v", err))
	}
	return ri
}
