package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"spottrain/checkpoint"
	"spottrain/internal/durable"
	"spottrain/safetensors"
	"spottrain/torch"
	"spottrain/train"
)

const ckptUsage = `Usage:
  spottrain ckpt <command> RUN_DIR [flags]

Commands:
  ls       list the checkpoints of a run dir, valid or not (safe while a trainer runs)
  verify   verify every checkpoint of a run dir; exit status 1 if any is invalid

For ls and verify, RUN_DIR may also be a run's copy in object storage: gs://BUCKET/PATH,
s3://BUCKET/PATH or file:///DIR (checkpoint.remote, then the run dir's path).
  export   write the weights of a checkpoint as a .safetensors file

Run 'spottrain ckpt <command> --help' for a command's flags.
`

// runCkpt dispatches to a ckpt subcommand. None of them takes the run dir's lock or changes
// anything in it.
func runCkpt(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, ckptUsage)
		return usageError{"ckpt: no command given"}
	}
	switch args[0] {
	case "ls":
		return runCkptLs(args[1:], stdout)
	case "verify":
		return runCkptVerify(args[1:], stdout)
	case "export":
		return runCkptExport(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, ckptUsage)
		return nil
	default:
		if s := nearest(args[0], []string{"ls", "verify", "export", "help"}); s != "" {
			return usageError{fmt.Sprintf("ckpt: unknown command %q: did you mean %s?", args[0], s)}
		}
		fmt.Fprint(os.Stderr, ckptUsage)
		return usageError{fmt.Sprintf("ckpt: unknown command %q", args[0])}
	}
}

func runCkptLs(args []string, stdout io.Writer) error {
	fs := newCkptFlagSet("ls", "ls RUN_DIR", `Lists every checkpoint directory of RUN_DIR, oldest first: step, epoch (from 1), batch
(the next one of the epoch), why it was taken, training loss, time (UTC), size on disk and status
(ok, or INVALID and why). It verifies every file, takes no lock and changes nothing, so it can run
beside a trainer. Leftovers of interrupted writes (.tmp-*, ...) are not listed.`, stdout)
	runDir, err := parseRunDir(fs, args, "RUN_DIR")
	if err != nil {
		return err
	}
	rows, err := listCheckpoints(runDir)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Fprintf(stdout, "no checkpoints in %s\n", runDir)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tEPOCH\tBATCH\tREASON\tLOSS\tTIME\tSIZE\tSTATUS")
	for _, r := range rows {
		epoch, batch, reason, loss, when := "-", "-", "-", "-", "-"
		if m := r.manifest; m != nil {
			epoch, batch, reason = strconv.Itoa(m.Epoch+1), strconv.Itoa(m.Batch), string(m.Reason)
			loss, when = fmt.Sprintf("%.4g", m.Loss), m.Time.Format(time.RFC3339)
		}
		size := "?"
		if r.size >= 0 {
			size = humanBytes(r.size)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.step, epoch, batch, reason, loss, when, size, r.status())
	}
	return tw.Flush()
}

func runCkptVerify(args []string, stdout io.Writer) error {
	fs := newCkptFlagSet("verify", "verify RUN_DIR", `Verifies every checkpoint of RUN_DIR (its manifest, and the size and SHA-256 of each file)
and, in a local run dir, loads it as a resume would: the model that its model.json describes,
on the CPU, takes model.pt, the optimizer of its config.yaml takes optim.pt, and the generators
take rng.pt. A checkpoint in object storage is checked by its sizes and hashes only. It prints one
line for each. Exit status 0 when there is at least one checkpoint and all are valid, 1
otherwise. It takes no lock and changes nothing.`, stdout)
	runDir, err := parseRunDir(fs, args, "RUN_DIR")
	if err != nil {
		return err
	}
	rows, err := listCheckpoints(runDir)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("no checkpoints in %s", runDir)
	}
	bad := 0
	for _, r := range rows {
		if r.ck != nil {
			if err := train.CheckLoads(r.ck); err != nil {
				r.invalid = err.Error()
			}
		}
		fmt.Fprintf(stdout, "%s  %s\n", path.Base(r.dir), r.status())
		if r.invalid != "" {
			bad++
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d checkpoints invalid in %s", bad, len(rows), runDir)
	}
	if strings.Contains(runDir, "://") {
		fmt.Fprintf(stdout, "%d checkpoints, all valid: every file has the size and SHA-256 of its manifest (not loaded: download one to load it)\n", len(rows))
	} else {
		fmt.Fprintf(stdout, "%d checkpoints, all valid: every file has the size and SHA-256 of its manifest, and the model, optimizer and RNG state load\n", len(rows))
	}
	return nil
}

func runCkptExport(args []string, stdout io.Writer) error {
	fs := newCkptFlagSet("export", "export RUN_DIR [--step N] [--out FILE]", `Writes the weights of the newest valid checkpoint of RUN_DIR (or of step N) as a .safetensors
file that PyTorch loads without spottrain: tensors named as in the model's state_dict (e.g.
lstm.weight_ih_l0, head.weight), and in __metadata__ format=pt, step, epoch and batch (as in the
checkpoint's manifest: epoch from 0, batch the next one), run_id, config_hash, model_spec (the
architecture, JSON) and, for a forecaster, preprocessing (its preprocessing.json: features,
normalisation, plant, clear-sky settings; see cmd/spottrain/testdata/forecast_safetensors.py). The file appears complete or not at all (temporary file, fsync, rename).`, stdout)
	step := fs.Int64("step", 0, "export the checkpoint of step `N` instead of the newest valid one")
	out := fs.String("out", "", "output `FILE` (default <run dir name>-step-<8-digit step>.safetensors here)")
	runDir, err := parseRunDir(fs, args, "RUN_DIR")
	if err != nil {
		return err
	}
	if strings.Contains(runDir, "://") {
		return usageError{fmt.Sprintf("ckpt export: RUN_DIR must be a local run dir, not a URL (got %s)", runDir)}
	}
	if fs.Changed("step") && *step < 0 {
		return usageError{fmt.Sprintf("ckpt export: --step must be >= 0 (got %d)", *step)}
	}
	rows, err := listCheckpoints(runDir)
	if err != nil {
		return err
	}
	var ck *checkpoint.Checkpoint
	if fs.Changed("step") {
		ck, err = pickStep(rows, runDir, *step)
	} else {
		ck, err = pickNewest(rows, runDir, stdout)
	}
	if err != nil {
		return err
	}
	m := ck.Manifest
	path := *out
	if path == "" {
		abs, err := filepath.Abs(runDir)
		if err != nil {
			return err
		}
		path = fmt.Sprintf("%s-step-%08d.safetensors", filepath.Base(abs), m.Step)
	}

	pending, err := durable.Create(path, 0o644)
	if err != nil {
		return fmt.Errorf("export %s: %w", ck.Dir, err)
	}
	defer pending.Cleanup() // a no-op after Commit
	tensors, spec, err := loadWeights(ck)
	if err != nil {
		return err
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	metadata := map[string]string{
		"format": "pt", "step": strconv.FormatInt(m.Step, 10), "epoch": strconv.Itoa(m.Epoch),
		"batch": strconv.Itoa(m.Batch), "run_id": m.RunID, "config_hash": m.ConfigHash, "model_spec": string(specJSON),
	}
	if prep, err := ck.ReadFile(train.PrepFile); err == nil {
		metadata["preprocessing"] = string(prep)
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	size, err := writeExport(pending, tensors, metadata)
	if err != nil {
		return fmt.Errorf("export %s: %w", ck.Dir, err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d tensors, %d bytes (%s), from %s\n", path, len(tensors), size, humanBytes(size), ck.Dir)
	return nil
}

// pickStep returns the checkpoint of step, or an input error naming it when it is absent or invalid.
func pickStep(rows []ckptRow, runDir string, step int64) (*checkpoint.Checkpoint, error) {
	for _, r := range rows {
		if r.step != step {
			continue
		}
		if r.ck == nil {
			return nil, &train.InputError{Err: fmt.Errorf("checkpoint %s is invalid: %s", r.dir, r.invalid)}
		}
		return r.ck, nil
	}
	return nil, &train.InputError{Err: fmt.Errorf("no checkpoint of step %d in %s", step, runDir)}
}

// pickNewest returns the newest valid checkpoint, saying on stdout which newer ones it skipped as
// invalid, or an input error when there is none.
func pickNewest(rows []ckptRow, runDir string, stdout io.Writer) (*checkpoint.Checkpoint, error) {
	for i := len(rows) - 1; i >= 0; i-- {
		if ck := rows[i].ck; ck != nil {
			for _, r := range rows[i+1:] {
				fmt.Fprintf(stdout, "%s is invalid (%s): exporting %s, the newest valid checkpoint\n",
					filepath.Base(r.dir), r.invalid, filepath.Base(ck.Dir))
			}
			return ck, nil
		}
	}
	if len(rows) == 0 {
		return nil, &train.InputError{Err: fmt.Errorf("no checkpoints in %s", runDir)}
	}
	return nil, &train.InputError{Err: fmt.Errorf("no valid checkpoint in %s: all %d are invalid (see spottrain ckpt ls)", runDir, len(rows))}
}

// loadWeights builds the checkpoint's model on the CPU from its model.json, loads its model.pt and
// returns its state as safetensors tensors, in state_dict order.
func loadWeights(ck *checkpoint.Checkpoint) ([]safetensors.Tensor, train.ModelSpec, error) {
	doc, err := ck.ReadFile(train.SpecFile)
	if err != nil {
		return nil, train.ModelSpec{}, err
	}
	spec, err := train.ParseModelSpec(doc)
	if err != nil {
		return nil, spec, fmt.Errorf("%s: %w", filepath.Join(ck.Dir, train.SpecFile), err)
	}
	state, err := ck.ReadFile(train.ModelFile)
	if err != nil {
		return nil, spec, err
	}
	ts, err := stateTensors(spec, state)
	if err != nil {
		return nil, spec, fmt.Errorf("load %s: %w", filepath.Join(ck.Dir, train.ModelFile), err)
	}
	out := make([]safetensors.Tensor, len(ts))
	for i, t := range ts {
		out[i] = safetensors.Tensor{Name: t.Name, DType: string(t.DType), Shape: t.Shape, Data: t.Data}
	}
	return out, spec, nil
}

// stateTensors builds the model of spec on the CPU, loads state into it and copies out its tensors.
func stateTensors(spec train.ModelSpec, state []byte) ([]torch.Tensor, error) {
	net, err := spec.Build(torch.CPU)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	if err := net.LoadState(state); err != nil {
		return nil, err
	}
	return net.StateTensors()
}

// ckptRow is one checkpoint directory of a run dir, valid or not.
type ckptRow struct {
	dir      string
	step     int64
	ck       *checkpoint.Checkpoint // nil when invalid
	invalid  string                 // why it is invalid
	manifest *checkpoint.Manifest   // nil when invalid and its manifest does not parse either
	size     int64                  // bytes of its files; -1 when they could not be listed
}

func (r ckptRow) status() string {
	if r.invalid != "" {
		return "INVALID: " + r.invalid
	}
	return "ok"
}

// listCheckpoints verifies every checkpoint directory of runDir (checkpoint.List: no lock, no
// change) and returns them by increasing step. Leftovers of interrupted operations (.tmp-*,
// .del-*, .old-*) are left out. A missing run dir is an input error. A URL (gs://, s3://,
// file://) is a run's copy in object storage: see listRemote.
func listCheckpoints(runDir string) ([]ckptRow, error) {
	if strings.Contains(runDir, "://") {
		return listRemote(context.Background(), runDir)
	}
	st, err := os.Stat(runDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, &train.InputError{Err: fmt.Errorf("run dir %s does not exist", runDir)}
	case err != nil:
		return nil, err
	case !st.IsDir():
		return nil, &train.InputError{Err: fmt.Errorf("run dir %s is not a directory", runDir)}
	}
	valid, invalid, err := checkpoint.List(runDir)
	if err != nil {
		return nil, err
	}
	var rows []ckptRow
	for i := range valid {
		ck := &valid[i]
		rows = append(rows, ckptRow{dir: ck.Dir, step: ck.Manifest.Step, ck: ck, manifest: &ck.Manifest, size: dirSize(ck.Dir)})
	}
	for _, inv := range invalid {
		digits, ok := strings.CutPrefix(filepath.Base(inv.Dir), "step-")
		step, err := strconv.ParseInt(digits, 10, 64)
		if !ok || err != nil {
			continue // a leftover: its name starts with a dot
		}
		r := ckptRow{dir: inv.Dir, step: step, invalid: inv.Reason, size: dirSize(inv.Dir)}
		if doc, err := os.ReadFile(filepath.Join(inv.Dir, checkpoint.ManifestName)); err == nil {
			if m, err := checkpoint.ParseManifest(doc); err == nil {
				r.manifest = &m
			}
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b ckptRow) int { return cmp.Compare(a.step, b.step) })
	return rows, nil
}

// listRemote verifies every checkpoint of the run's copy at url, reading every object, and
// returns them by increasing step, with the prefixes of unfinished uploads as invalid rows.
func listRemote(ctx context.Context, url string) ([]ckptRow, error) {
	if err := checkpoint.CheckRemoteURL(url); err != nil {
		return nil, &train.InputError{Err: err}
	}
	r, err := checkpoint.OpenRemote(ctx, url)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	valid, invalid, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	var rows []ckptRow
	for _, c := range valid {
		m := c.Manifest
		row := ckptRow{dir: c.URL, step: m.Step, manifest: &m}
		for _, f := range m.Files {
			row.size += f.Size
		}
		if err := r.Verify(ctx, c); err != nil {
			row.invalid = err.Error()
		}
		rows = append(rows, row)
	}
	for _, inv := range invalid {
		step, err := strconv.ParseInt(strings.TrimPrefix(path.Base(inv.Dir), "step-"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: unexpected checkpoint name", inv.Dir)
		}
		rows = append(rows, ckptRow{dir: inv.Dir, step: step, invalid: inv.Reason, size: -1})
	}
	slices.SortFunc(rows, func(a, b ckptRow) int { return cmp.Compare(a.step, b.step) })
	return rows, nil
}

// dirSize returns the bytes of the regular files in dir, or -1 if it cannot be listed.
func dirSize(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// humanBytes formats n bytes in binary units: 512 B, 1.5 KiB, 12.0 MiB.
func humanBytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if v < 1024 {
			break
		}
		v, unit = v/1024, u
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}

// writeExport writes the safetensors file of tensors and metadata into p and commits it. It
// returns the file's size.
func writeExport(p *durable.Pending, tensors []safetensors.Tensor, metadata map[string]string) (int64, error) {
	c := &counter{w: p}
	bw := bufio.NewWriterSize(c, 1<<20)
	if err := safetensors.Write(bw, tensors, metadata); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	return c.n, p.Commit()
}

// counter is w, counting the bytes written through it.
type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// newCkptFlagSet returns the flag set of the subcommand "ckpt name", whose --help shows the
// synopsis, what it does and its flags.
func newCkptFlagSet(name, synopsis, about string, stdout io.Writer) *pflag.FlagSet {
	return newAboutFlagSet("ckpt "+name, "ckpt "+synopsis, about, stdout)
}

// newAboutFlagSet is newFlagSet with a paragraph about the command in its usage.
func newAboutFlagSet(name, synopsis, about string, stdout io.Writer) *pflag.FlagSet {
	fs := newFlagSet(name, synopsis, stdout)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: spottrain %s\n\n%s\n", synopsis, about)
		if flags := fs.FlagUsages(); flags != "" {
			fmt.Fprintf(fs.Output(), "\nFlags:\n%s", flags)
		}
	}
	return fs
}

// parseRunDir parses args into fs and returns its one positional argument, the folder the usage
// calls name (RUN_DIR or RUNS_DIR). Flags may come before or after it.
func parseRunDir(fs *pflag.FlagSet, args []string, name string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return "", err
		}
		return "", usageError{fmt.Sprintf("%s: %v", fs.Name(), err)}
	}
	switch fs.NArg() {
	case 0:
		return "", usageError{fmt.Sprintf("%s: %s is required", fs.Name(), name)}
	case 1:
		return fs.Arg(0), nil
	default:
		return "", usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(1))}
	}
}
