package main

// End-to-end tests of `spottrain ckpt`: a tiny training run with a checkpoint every 2 steps leaves
// a run dir, and ls, verify and export run on it as a user runs them, before and after corruption.
// TestCkptExportPyTorch checks that PyTorch, without spottrain, forecasts what spottrain does with
// the exported weights.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/data/solar"
	"spottrain/internal/testutil"
	"spottrain/safetensors"
	"spottrain/torch"
	"spottrain/train"
)

// trainRun trains a tiny job in dir with a checkpoint every 2 steps, all kept, into dir/run, and
// returns the checkpoint directories, oldest first (at least 3).
func trainRun(t *testing.T, dir string) []string {
	t.Helper()
	args := append(lstmTrain(), tiny("run")...)
	args = append(args, "--set", "checkpoint.every_steps=2", "--set", "checkpoint.keep=100")
	r := spottrain(t, dir, args...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	ckpts, err := filepath.Glob(filepath.Join(dir, "run", "step-*"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(ckpts), 3, "checkpoints of the training run")
	return ckpts // Glob sorts, and the names have the same number of digits
}

func stepOf(t *testing.T, ckptDir string) int64 {
	t.Helper()
	step, err := strconv.ParseInt(strings.TrimPrefix(filepath.Base(ckptDir), "step-"), 10, 64)
	require.NoError(t, err)
	return step
}

func TestCkptUsage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings of stdout
		lastStderr string   // the last line of stderr, when code is not 0
	}{
		{name: "TopHelp", args: []string{"--help"}, stdout: []string{"\n  ckpt "}},
		{name: "Help", args: []string{"ckpt", "--help"}, stdout: []string{"spottrain ckpt <command> RUN_DIR", "\n  ls ", "\n  verify ", "\n  export "}},
		{name: "LsHelp", args: []string{"ckpt", "ls", "--help"}, stdout: []string{"Usage: spottrain ckpt ls RUN_DIR\n", "INVALID"}},
		{name: "VerifyHelp", args: []string{"ckpt", "verify", "-h"}, stdout: []string{"Usage: spottrain ckpt verify RUN_DIR\n", "Exit status"}},
		{name: "ExportHelp", args: []string{"ckpt", "export", "--help"},
			stdout: []string{"Usage: spottrain ckpt export RUN_DIR [--step N] [--out FILE]\n", "--step N", "--out FILE", "state_dict"}},
		{name: "NoCommand", args: []string{"ckpt"}, code: 2, lastStderr: "spottrain: ckpt: no command given"},
		{name: "UnknownCommand", args: []string{"ckpt", "rm", "run"}, code: 2, lastStderr: `spottrain: ckpt: unknown command "rm"`},
		{name: "NoRunDir", args: []string{"ckpt", "ls"}, code: 2, lastStderr: "spottrain: ckpt ls: RUN_DIR is required"},
		{name: "TwoRunDirs", args: []string{"ckpt", "verify", "a", "b"}, code: 2, lastStderr: `spottrain: ckpt verify: unexpected argument "b"`},
		{name: "UnknownFlag", args: []string{"ckpt", "ls", "--all", "run"}, code: 2, lastStderr: "spottrain: ckpt ls: unknown flag: --all"},
		{name: "StepNotANumber", args: []string{"ckpt", "export", "run", "--step", "last"}, code: 2,
			lastStderr: `spottrain: ckpt export: invalid argument "last" for "--step" flag: must be an integer`},
		{name: "NegativeStep", args: []string{"ckpt", "export", "--step", "-1", "run"}, code: 2,
			lastStderr: "spottrain: ckpt export: --step must be >= 0 (got -1)"},
		{name: "LsMissingRunDir", args: []string{"ckpt", "ls", "nope"}, code: 2, lastStderr: "spottrain: run dir nope does not exist"},
		{name: "VerifyMissingRunDir", args: []string{"ckpt", "verify", "nope"}, code: 2, lastStderr: "spottrain: run dir nope does not exist"},
		{name: "ExportMissingRunDir", args: []string{"ckpt", "export", "nope/run"}, code: 2, lastStderr: "spottrain: run dir nope/run does not exist"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			r := spottrain(t, dir, tt.args...)
			assert.Equal(t, tt.code, r.code, "stderr: %s", r.stderr)
			for _, s := range tt.stdout {
				assert.Contains(t, r.stdout, s)
			}
			if tt.code == 0 {
				assert.Empty(t, r.stderr, "help goes to stdout")
			} else {
				assert.Empty(t, r.stdout)
				lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
				assert.Equal(t, tt.lastStderr, lines[len(lines)-1])
			}
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing written to the working directory")
		})
	}
}

func TestCkptNoCheckpoints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "run"), 0o755))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "run", ".tmp-step-00000004-123"), 0o755))
	testutil.WriteFile(t, filepath.Join(dir, "file"), "not a dir")

	r := spottrain(t, dir, "ckpt", "ls", "run")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Equal(t, "no checkpoints in run\n", r.stdout, "the leftover of a write is not a checkpoint")
	assert.Empty(t, r.stderr)

	r = spottrain(t, dir, "ckpt", "verify", "run")
	assert.Equal(t, 1, r.code, "nothing verified is not a success")
	assert.Equal(t, "no checkpoints in run", errorLine(t, r.stderr))

	r = spottrain(t, dir, "ckpt", "export", "run")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "no checkpoints in run", errorLine(t, r.stderr))

	r = spottrain(t, dir, "ckpt", "ls", "file")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "run dir file is not a directory", errorLine(t, r.stderr))
	assert.DirExists(t, filepath.Join(dir, "run", ".tmp-step-00000004-123"), "ls and verify change nothing")
}

// lsRowRE matches a row of `ckpt ls`: step, epoch, batch, reason, loss, time, size, status.
var lsRowRE = regexp.MustCompile(`^(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+([0-9.]+ (?:B|KiB|MiB))\s+(ok|INVALID: .+)$`)

// lsRows runs `ckpt ls run` in dir and returns its rows, checking the header line.
func lsRows(t *testing.T, dir string) [][]string {
	t.Helper()
	r := spottrain(t, dir, "ckpt", "ls", "run")
	require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stderr)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Regexp(t, `^STEP\s+EPOCH\s+BATCH\s+REASON\s+LOSS\s+TIME\s+SIZE\s+STATUS$`, lines[0])
	var rows [][]string
	for _, l := range lines[1:] {
		m := lsRowRE.FindStringSubmatch(l)
		require.NotNil(t, m, "malformed row %q", l)
		rows = append(rows, m[1:])
	}
	return rows
}

func TestCkptLsVerify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ckpts := trainRun(t, dir)
	// A leftover of an interrupted write is not a checkpoint.
	require.NoError(t, os.Mkdir(filepath.Join(dir, "run", ".tmp-step-00000099-42"), 0o700))

	rows := lsRows(t, dir)
	require.Len(t, rows, len(ckpts), "one row per checkpoint")
	for i, row := range rows {
		ck, err := checkpoint.Load(ckpts[i])
		require.NoError(t, err)
		m := ck.Manifest
		assert.Equal(t, strconv.FormatInt(m.Step, 10), row[0], "oldest first")
		assert.Equal(t, strconv.Itoa(m.Epoch+1), row[1], "epochs from 1")
		assert.Equal(t, strconv.Itoa(m.Batch), row[2])
		assert.Equal(t, string(m.Reason), row[3])
		assert.Equal(t, m.Time.Format("2006-01-02T15:04:05Z"), row[5])
		assert.Regexp(t, `^\d+\.\d KiB$`, row[6], "the size of the files, about 30 KiB")
		assert.Equal(t, "ok", row[7])
	}
	assert.Equal(t, "1", rows[0][1], "one epoch")

	r := spottrain(t, dir, "ckpt", "verify", "run")
	assert.Equal(t, 0, r.code, "stderr: %s", r.stderr)
	assert.Empty(t, r.stderr)
	var want strings.Builder
	for _, c := range ckpts {
		fmt.Fprintf(&want, "%s  ok\n", filepath.Base(c))
	}
	fmt.Fprintf(&want, "%d checkpoints, all valid: every file has the size and SHA-256 of its manifest, and the model, optimizer and RNG state load\n", len(ckpts))
	assert.Equal(t, want.String(), r.stdout)

	// Corrupt the newest model.pt and delete the oldest manifest.
	newest, oldest := ckpts[len(ckpts)-1], ckpts[0]
	testutil.Corrupt(t, filepath.Join(newest, train.ModelFile))
	require.NoError(t, os.Remove(filepath.Join(oldest, checkpoint.ManifestName)))

	rows = lsRows(t, dir)
	require.Len(t, rows, len(ckpts))
	assert.Equal(t, "INVALID: model.pt: sha256 mismatch", rows[len(rows)-1][7])
	assert.Equal(t, strconv.FormatInt(stepOf(t, newest), 10), rows[len(rows)-1][0])
	assert.NotEqual(t, "-", rows[len(rows)-1][1], "a manifest that parses is shown")
	assert.Equal(t, []string{strconv.FormatInt(stepOf(t, oldest), 10), "-", "-", "-", "-", "-"}, rows[0][:6],
		"without a manifest only the step is known")
	assert.Equal(t, "INVALID: manifest.json is missing", rows[0][7])
	for _, row := range rows[1 : len(rows)-1] {
		assert.Equal(t, "ok", row[7])
	}

	r = spottrain(t, dir, "ckpt", "verify", "run")
	assert.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Equal(t, fmt.Sprintf("2 of %d checkpoints invalid in run", len(ckpts)), errorLine(t, r.stderr))
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, len(ckpts), "one line per checkpoint: %s", r.stdout)
	assert.Equal(t, filepath.Base(oldest)+"  INVALID: manifest.json is missing", lines[0])
	assert.Equal(t, filepath.Base(newest)+"  INVALID: model.pt: sha256 mismatch", lines[len(lines)-1])

	// ls and verify change nothing: the invalid checkpoints and the leftover are still there.
	assert.FileExists(t, filepath.Join(newest, train.ModelFile))
	assert.DirExists(t, oldest)
	assert.DirExists(t, filepath.Join(dir, "run", ".tmp-step-00000099-42"))
}

// wrongShapes replaces the model.pt of the checkpoint ckDir with valid torch serialization of the
// model of its model.json one hidden unit wider, and rewrites its manifest to match: the checkpoint
// verifies, but its weights do not load into its model.
func wrongShapes(t *testing.T, ckDir string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(ckDir, train.SpecFile))
	require.NoError(t, err)
	spec, err := train.ParseModelSpec(doc)
	require.NoError(t, err)
	spec.Hidden++
	net, err := spec.Build(torch.CPU)
	require.NoError(t, err)
	defer net.Close()
	opt, err := torch.NewOptimizer(net, torch.OptimizerConfig{Name: "adam", LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8})
	require.NoError(t, err)
	defer opt.Close()
	snap, err := torch.TakeSnapshot(net, opt)
	require.NoError(t, err)
	defer snap.Close()
	model, err := snap.Model()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(ckDir, train.ModelFile), model, 0o644))

	path := filepath.Join(ckDir, checkpoint.ManifestName)
	doc, err = os.ReadFile(path)
	require.NoError(t, err)
	var m checkpoint.Manifest
	require.NoError(t, json.Unmarshal(doc, &m))
	sum := sha256.Sum256(model)
	for i, f := range m.Files {
		if f.Name == train.ModelFile {
			m.Files[i].Size, m.Files[i].SHA256 = int64(len(model)), hex.EncodeToString(sum[:])
		}
	}
	doc, err = json.Marshal(m)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, doc, 0o644))
	_, err = checkpoint.Load(ckDir)
	require.NoError(t, err, "the checkpoint verifies")
}

// TestCkptVerifyLoads: a checkpoint whose files match its manifest but whose model.pt does not fit
// its model is ok for ls (hashes only) and INVALID for verify, which loads every checkpoint.
func TestCkptVerifyLoads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ckpts := trainRun(t, dir)
	bad := ckpts[len(ckpts)-2]
	wrongShapes(t, bad)

	for _, row := range lsRows(t, dir) {
		assert.Equal(t, "ok", row[7], "ls checks sizes and hashes only")
	}
	r := spottrain(t, dir, "ckpt", "verify", "run")
	assert.Equal(t, 1, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Equal(t, fmt.Sprintf("1 of %d checkpoints invalid in run", len(ckpts)), errorLine(t, r.stderr))
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	require.Len(t, lines, len(ckpts), "one line per checkpoint: %s", r.stdout)
	for i, l := range lines {
		if ckpts[i] != bad {
			assert.Equal(t, filepath.Base(ckpts[i])+"  ok", l)
			continue
		}
		assert.Regexp(t, `^`+filepath.Base(bad)+`  INVALID: model.pt does not load: torch: load model state: \S+: state has shape \[`, l)
	}
}

// readExport reads an exported file and checks what any export holds: the tensors of the LSTM
// forecaster of the run's model.json, and the metadata of ck.
func readExport(t *testing.T, path string, ck *checkpoint.Checkpoint) []safetensors.Tensor {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tensors, md, err := safetensors.Read(f)
	require.NoError(t, err)

	doc, err := ck.ReadFile(train.SpecFile)
	require.NoError(t, err)
	spec, err := train.ParseModelSpec(doc)
	require.NoError(t, err)
	in, h, out := int64(spec.Inputs), int64(spec.Hidden), int64(spec.Horizon)
	want := []struct {
		name  string
		shape []int64
	}{
		{"lstm.weight_ih_l0", []int64{4 * h, in}}, {"lstm.weight_hh_l0", []int64{4 * h, h}},
		{"lstm.bias_ih_l0", []int64{4 * h}}, {"lstm.bias_hh_l0", []int64{4 * h}},
		{"head.weight", []int64{out, h}}, {"head.bias", []int64{out}},
	}
	require.Len(t, tensors, len(want))
	for i, w := range want {
		assert.Equal(t, w.name, tensors[i].Name)
		assert.Equal(t, w.shape, tensors[i].Shape, w.name)
		assert.Equal(t, "F32", tensors[i].DType, w.name)
	}

	m := ck.Manifest
	var mdSpec train.ModelSpec
	require.NoError(t, json.Unmarshal([]byte(md["model_spec"]), &mdSpec))
	assert.Equal(t, spec, mdSpec)
	delete(md, "model_spec")
	// A forecaster's preprocessing travels with its weights, as the checkpoint holds it.
	prep, err := ck.ReadFile(train.PrepFile)
	require.NoError(t, err)
	assert.Equal(t, string(prep), md["preprocessing"])
	_, err = solar.ParsePreprocessing([]byte(md["preprocessing"]))
	require.NoError(t, err)
	delete(md, "preprocessing")
	assert.Equal(t, map[string]string{
		"format": "pt", "step": strconv.FormatInt(m.Step, 10), "epoch": strconv.Itoa(m.Epoch),
		"batch": strconv.Itoa(m.Batch), "run_id": m.RunID, "config_hash": m.ConfigHash,
	}, md)
	assert.Len(t, m.RunID, 16)
	assert.Len(t, m.ConfigHash, 64)
	return tensors
}

// exportLineRE matches the line of a successful export: path, tensors, bytes.
var exportLineRE = regexp.MustCompile(`(?m)^wrote (\S+): (\d+) tensors, (\d+) bytes \([0-9.]+ (?:B|KiB)\), from (\S+)$`)

// checkExported checks the output of a successful export from ckptDir to path (relative to dir),
// and that no temporary file is left beside it.
func checkExported(t *testing.T, r result, dir, path, ckptDir string) {
	t.Helper()
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	assert.Empty(t, r.stderr)
	m := exportLineRE.FindStringSubmatch(r.stdout)
	require.NotNil(t, m, "no line 'wrote ...': %s", r.stdout)
	assert.Equal(t, path, m[1])
	assert.Equal(t, "6", m[2])
	st, err := os.Stat(filepath.Join(dir, path))
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatInt(st.Size(), 10), m[3], "the bytes written are the file's")
	assert.Equal(t, filepath.Join("run", filepath.Base(ckptDir)), m[4])
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(filepath.Join(dir, path)), ".*.tmp-*"))
	require.NoError(t, err)
	assert.Empty(t, leftovers, "temporary files left")
}

func TestCkptExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ckpts := trainRun(t, dir)
	newest, previous := ckpts[len(ckpts)-1], ckpts[len(ckpts)-2]
	loadCk := func(d string) *checkpoint.Checkpoint {
		ck, err := checkpoint.Load(d)
		require.NoError(t, err)
		return ck
	}

	// The newest, under the default name in the working directory.
	name := fmt.Sprintf("run-step-%08d.safetensors", stepOf(t, newest))
	r := spottrain(t, dir, "ckpt", "export", "run")
	checkExported(t, r, dir, name, newest)
	assert.NotContains(t, r.stdout, "invalid")
	newestTensors := readExport(t, filepath.Join(dir, name), loadCk(newest))

	// An older step, to a file of our choice (flags before the run dir).
	out := filepath.Join("out", "older.safetensors")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "out"), 0o755))
	r = spottrain(t, dir, "ckpt", "export", "--out", out, "--step", strconv.FormatInt(stepOf(t, ckpts[0]), 10), "run")
	checkExported(t, r, dir, out, ckpts[0])
	older := readExport(t, filepath.Join(dir, out), loadCk(ckpts[0]))
	assert.NotEqual(t, newestTensors[0].Data, older[0].Data, "the weights of another step")

	// A step that has no checkpoint.
	r = spottrain(t, dir, "ckpt", "export", "run", "--step", "999", "--out", "absent.safetensors")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, "no checkpoint of step 999 in run", errorLine(t, r.stderr))
	assert.NoFileExists(t, filepath.Join(dir, "absent.safetensors"))

	// The newest corrupt: the previous valid one is exported, and stdout says so.
	prevData, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	testutil.Corrupt(t, filepath.Join(newest, train.ModelFile))
	r = spottrain(t, dir, "ckpt", "export", "run")
	prevName := fmt.Sprintf("run-step-%08d.safetensors", stepOf(t, previous))
	checkExported(t, r, dir, prevName, previous)
	assert.Contains(t, r.stdout, fmt.Sprintf("%s is invalid (model.pt: sha256 mismatch): exporting %s, the newest valid checkpoint\n",
		filepath.Base(newest), filepath.Base(previous)))
	readExport(t, filepath.Join(dir, prevName), loadCk(previous))
	now, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	assert.Equal(t, prevData, now, "the export of the newest is left alone")

	// Asked for by its step, the corrupt one is refused by name.
	r = spottrain(t, dir, "ckpt", "export", "run", "--step", strconv.FormatInt(stepOf(t, newest), 10), "--out", "bad.safetensors")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, fmt.Sprintf("checkpoint %s is invalid: model.pt: sha256 mismatch", filepath.Join("run", filepath.Base(newest))),
		errorLine(t, r.stderr))
	assert.NoFileExists(t, filepath.Join(dir, "bad.safetensors"))

	// None valid: an input error.
	for _, c := range ckpts[:len(ckpts)-1] {
		testutil.Corrupt(t, filepath.Join(c, train.SpecFile))
	}
	r = spottrain(t, dir, "ckpt", "export", "run", "--out", "none.safetensors")
	assert.Equal(t, 2, r.code)
	assert.Equal(t, fmt.Sprintf("no valid checkpoint in run: all %d are invalid (see spottrain ckpt ls)", len(ckpts)), errorLine(t, r.stderr))
	assert.NoFileExists(t, filepath.Join(dir, "none.safetensors"))
}

// TestCkptExportOut: --out names a file to replace. A link to a regular file is written through
// (the link stays); a device, a folder or a link to a device is refused by name with exit status
// 1, and nothing is touched.
func TestCkptExportOut(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ckpts := trainRun(t, dir)
	newest := ckpts[len(ckpts)-1]
	ckDir := filepath.Join("run", filepath.Base(newest))

	require.NoError(t, os.Mkdir(filepath.Join(dir, "models"), 0o755))
	testutil.WriteFile(t, filepath.Join(dir, "models", "model.safetensors"), "an older export")
	require.NoError(t, os.Symlink("models/model.safetensors", filepath.Join(dir, "latest.safetensors")))
	r := spottrain(t, dir, "ckpt", "export", "run", "--out", "latest.safetensors")
	checkExported(t, r, dir, "latest.safetensors", newest)
	info, err := os.Lstat(filepath.Join(dir, "latest.safetensors"))
	require.NoError(t, err)
	assert.Equal(t, os.ModeSymlink, info.Mode().Type(), "the link stays a link")
	ck, err := checkpoint.Load(newest)
	require.NoError(t, err)
	readExport(t, filepath.Join(dir, "models", "model.safetensors"), ck)
	assert.Equal(t, []string{"model.safetensors"}, testutil.DirNames(t, filepath.Join(dir, "models")), "no temporary file left")

	require.NoError(t, os.Symlink("/dev/null", filepath.Join(dir, "null.safetensors")))
	before := testutil.DirNames(t, dir)
	for _, tt := range []struct{ out, want string }{
		{"/dev/null", "refusing to replace /dev/null: it is a character device, not a regular file"},
		{"/dev/full", "refusing to replace /dev/full: it is a character device, not a regular file"},
		{"models", "refusing to replace models: it is a folder, not a regular file"},
		{"null.safetensors", "refusing to replace null.safetensors: it links to /dev/null, which is a character device, not a regular file"},
	} {
		r := spottrain(t, dir, "ckpt", "export", "run", "--out", tt.out)
		assert.Equal(t, 1, r.code, "--out %s: stdout: %s\nstderr: %s", tt.out, r.stdout, r.stderr)
		assert.Empty(t, r.stdout, "--out %s", tt.out)
		assert.Equal(t, "export "+ckDir+": "+tt.want, errorLine(t, r.stderr))
		assert.Equal(t, before, testutil.DirNames(t, dir), "--out %s touched nothing", tt.out)
	}
}

// TestCkptExportPyTorch exports the newest checkpoint and has PyTorch (Debian's python3-torch,
// /usr/bin/python3) read the file with json, struct and torch.frombuffer only, load it into an
// nn.LSTM + nn.Linear module with load_state_dict(strict=True) and forecast a fixed input: its
// outputs must be those of the checkpoint loaded by spottrain's own code, to 1e-5.
func TestCkptExportPyTorch(t *testing.T) {
	t.Parallel()
	python := "/usr/bin/python3" // SPOTTRAIN_TEST_PYTHON names another (a GPU machine's PyTorch)
	if p := os.Getenv("SPOTTRAIN_TEST_PYTHON"); p != "" {
		python = p
	}
	if out, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch (%v: %s): install Debian's python3-torch (apt-get install python3-torch)",
			python, err, strings.TrimSpace(string(out)))
	}
	script, err := filepath.Abs(filepath.Join("testdata", "forecast_safetensors.py"))
	require.NoError(t, err)

	dir := t.TempDir()
	ckpts := trainRun(t, dir)
	newest := ckpts[len(ckpts)-1]
	r := spottrain(t, dir, "ckpt", "export", "run", "--out", "model.safetensors")
	checkExported(t, r, dir, "model.safetensors", newest)

	const batch, lookback = 3, 24
	cmd := exec.Command(python, script, filepath.Join(dir, "model.safetensors"), strconv.Itoa(batch), strconv.Itoa(lookback))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	require.NoError(t, err, "python: %s", stderr.String())
	var py struct {
		Names    []string          `json:"names"`
		Metadata map[string]string `json:"metadata"`
		Outputs  []float64         `json:"outputs"`
	}
	require.NoError(t, json.Unmarshal(stdout, &py), "%s", stdout)
	assert.Equal(t, []string{"lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "lstm.bias_hh_l0", "head.weight", "head.bias"}, py.Names)
	assert.Equal(t, "pt", py.Metadata["format"])

	// The same forecast by spottrain: the checkpoint's own files, through torch and train.
	ck, err := checkpoint.Load(newest)
	require.NoError(t, err)
	doc, err := ck.ReadFile(train.SpecFile)
	require.NoError(t, err)
	spec, err := train.ParseModelSpec(doc)
	require.NoError(t, err)
	state, err := ck.ReadFile(train.ModelFile)
	require.NoError(t, err)
	net, err := spec.Build(torch.CPU)
	require.NoError(t, err)
	defer net.Close()
	require.NoError(t, net.LoadState(state))
	x := make([]float32, batch*lookback*spec.Inputs)
	for i := range x {
		x[i] = float32(i%17)/8 - 1
	}
	want := make([]float32, batch*spec.Horizon)
	require.NoError(t, net.Forward(torch.Float32s(x, batch, lookback, int64(spec.Inputs)), want))

	require.Len(t, py.Outputs, len(want))
	spread := 0.0
	for i := range want {
		assert.InDelta(t, float64(want[i]), py.Outputs[i], 1e-5, "output %d", i)
		spread = max(spread, math.Abs(float64(want[i]-want[0])))
	}
	assert.Greater(t, spread, 1e-3, "the outputs differ from each other: the comparison means something")
}
