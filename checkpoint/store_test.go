package checkpoint_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
)

// holdLockEnv makes the test binary a child that holds the lock of a run directory: it prints
// "locked" and blocks until its stdin closes or it is killed.
const holdLockEnv = "CHECKPOINT_TEST_HOLD_LOCK"

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdLockEnv); dir != "" {
		s, err := checkpoint.Open(dir, checkpoint.Options{Keep: 1})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("locked")
		bufio.NewReader(os.Stdin).ReadString('\n')
		s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{Keep: 3})
	c := save(t, s, 1234, nil)

	want := testManifest(1234)
	want.FormatVersion = checkpoint.FormatVersion
	want.Files = fileEntries(1234)
	assert.Equal(t, filepath.Join(dir, "step-00001234"), c.Dir)
	assert.Equal(t, want, c.Manifest)
	assert.Equal(t, []string{"step-00001234"}, entries(t, dir), "no temporary directory is left")

	latest, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Empty(t, invalid)
	assert.Equal(t, c.Dir, latest.Dir)
	assert.Equal(t, want, latest.Manifest)
	for _, f := range payload(1234) {
		data, err := latest.ReadFile(f.name)
		require.NoError(t, err)
		assert.Equal(t, f.data, data, f.name)
	}

	listed, invalid, err := checkpoint.List(dir)
	require.NoError(t, err)
	assert.Empty(t, invalid)
	require.Len(t, listed, 1)
	assert.Equal(t, want, listed[0].Manifest)

	loaded, err := checkpoint.Load(c.Dir + "/")
	require.NoError(t, err)
	assert.Equal(t, c.Dir, loaded.Dir)
	assert.Equal(t, want, loaded.Manifest)

	// The manifest is JSON with stable snake_case names.
	data, err := os.ReadFile(filepath.Join(c.Dir, checkpoint.ManifestName))
	require.NoError(t, err)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(data, &raw))
	assert.ElementsMatch(t, []string{"format_version", "run_id", "config_hash", "epoch", "step", "batch",
		"loss", "metrics", "data_seed", "compute_seconds", "libtorch", "device", "reason", "time", "files"},
		keys(raw))
	assert.JSONEq(t, `"2025-11-24T20:42:07.123456789Z"`, string(raw["time"]))
	assert.JSONEq(t, `9223372036854775815`, string(raw["data_seed"]))
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestCommitNormalizesManifest(t *testing.T) {
	s := openStore(t, t.TempDir(), checkpoint.Options{})
	before := time.Now()
	c := save(t, s, 1, func(m *checkpoint.Manifest) { m.Time, m.Metrics = time.Time{}, nil })
	assert.Equal(t, time.UTC, c.Manifest.Time.Location())
	assert.False(t, c.Manifest.Time.Before(before.Truncate(0)), "a zero time becomes the commit time")
	assert.False(t, c.Manifest.Time.After(time.Now()))
	assert.Equal(t, map[string]float64{}, c.Manifest.Metrics)

	paris := time.FixedZone("CET", 3600)
	c = save(t, s, 2, func(m *checkpoint.Manifest) { m.Time = time.Date(2025, 1, 1, 13, 0, 0, 0, paris) })
	assert.Equal(t, time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC), c.Manifest.Time)
}

func TestReplaceSameStep(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{Keep: 1})
	save(t, s, 100, nil)
	save(t, s, 100, func(m *checkpoint.Manifest) { m.Loss, m.Reason = 0.5, codes.Final })

	assert.Equal(t, []string{"step-00000100"}, entries(t, dir), "the replaced copy is removed")
	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Empty(t, invalid)
	assert.Equal(t, 0.5, c.Manifest.Loss)
	assert.Equal(t, codes.Final, c.Manifest.Reason)
}

// TestReplaceRenameFails: when the new copy cannot be renamed in, the old one is put back.
func TestReplaceRenameFails(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := openStore(t, dir, checkpoint.Options{FS: ffs})
	save(t, s, 100, nil)

	final, renames := stepDir(dir, 100), 0
	ffs.fail = failOn(syscall.EIO, func(o op) bool {
		if o.name == "rename" && o.to == final && strings.Contains(o.path, ".tmp-") {
			renames++
			return renames == 2 // the first one fails by itself: the old copy is there
		}
		return false
	})
	_, err := attempt(s, 100, func(m *checkpoint.Manifest) { m.Loss = 0.5 })
	require.ErrorIs(t, err, syscall.EIO)
	assert.Equal(t, 2, renames)
	assert.Equal(t, []string{"step-00000100"}, entries(t, dir))

	ffs.fail = nil
	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Empty(t, invalid)
	assert.Equal(t, 0.125, c.Manifest.Loss, "the old copy is back")
}

// TestFailedSaveLeavesPrevious injects a failure at each stage of a save: the error says what
// failed where, the previous checkpoint stays the latest and no temporary directory is left.
func TestFailedSaveLeavesPrevious(t *testing.T) {
	base := func(name string) func(o op) bool {
		return func(o op) bool { return filepath.Base(o.path) == name }
	}
	cases := []struct {
		name    string
		noSpace map[string]int64
		fail    func(o op) error
		errno   syscall.Errno
		msg     string // after "commit checkpoint <dir>/step-00000200: "
	}{
		{name: "NoSpacePayload", noSpace: map[string]int64{"model.pt": 1000}, errno: syscall.ENOSPC,
			msg: "write model.pt: no space left on device"},
		{name: "NoSpaceManifest", noSpace: map[string]int64{"manifest.json": 10}, errno: syscall.ENOSPC,
			msg: "write manifest.json: no space left on device"},
		{name: "CreatePayload", fail: failOn(syscall.EACCES, func(o op) bool { return o.name == "create" && base("optim.pt")(o) }),
			errno: syscall.EACCES, msg: "create optim.pt: permission denied"},
		{name: "SyncPayload", fail: failOn(syscall.EIO, func(o op) bool { return o.name == "sync" && base("rng.pt")(o) }),
			errno: syscall.EIO, msg: "sync rng.pt: input/output error"},
		{name: "SyncManifest", fail: failOn(syscall.EIO, func(o op) bool { return o.name == "sync" && base("manifest.json")(o) }),
			errno: syscall.EIO, msg: "sync manifest.json: input/output error"},
		{name: "SyncTempDir", fail: failOn(syscall.EIO, func(o op) bool { return o.name == "syncdir" && strings.Contains(o.path, ".tmp-") }),
			errno: syscall.EIO, msg: "input/output error"},
		{name: "Rename", fail: failOn(syscall.EXDEV, func(o op) bool { return o.name == "rename" }),
			errno: syscall.EXDEV, msg: "invalid cross-device link"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ffs := newFaultFS()
			s := openStore(t, dir, checkpoint.Options{Keep: 1, FS: ffs})
			save(t, s, 100, nil)

			ffs.noSpace, ffs.fail = tc.noSpace, tc.fail
			c, err := attempt(s, 200, nil)
			assert.Nil(t, c)
			require.ErrorIs(t, err, tc.errno)
			assert.True(t, strings.HasPrefix(err.Error(), "commit checkpoint "+stepDir(dir, 200)+": "), err.Error())
			assert.True(t, strings.HasSuffix(err.Error(), ": "+tc.msg), err.Error())
			assert.Equal(t, []string{"step-00000100"}, entries(t, dir), "the previous checkpoint only, no temporary directory")

			ffs.noSpace, ffs.fail = nil, nil
			latest, invalid, err := s.Latest()
			require.NoError(t, err)
			assert.Empty(t, invalid)
			assert.Equal(t, int64(100), latest.Manifest.Step)
		})
	}
}

func TestBeginFails(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := openStore(t, dir, checkpoint.Options{FS: ffs})
	ffs.fail = failOn(syscall.ENOSPC, func(o op) bool { return o.name == "mkdirtemp" })
	_, err := s.Begin(7)
	require.ErrorIs(t, err, syscall.ENOSPC)
	assert.Contains(t, err.Error(), "begin checkpoint "+stepDir(dir, 7)+": ")

	_, err = s.Begin(-1)
	assert.ErrorContains(t, err, "negative step -1")
	assert.Empty(t, entries(t, dir))
}

// TestPendingMisuse: a rejected Write or Commit abandons the checkpoint and removes its
// temporary directory; the pending checkpoint then refuses everything.
func TestPendingMisuse(t *testing.T) {
	data := []byte("weights")
	cases := []struct {
		name string
		do   func(p *checkpoint.Pending) error
		msg  string
	}{
		{"EmptyName", func(p *checkpoint.Pending) error { return p.Write("", data) }, `invalid file name ""`},
		{"Slash", func(p *checkpoint.Pending) error { return p.Write("sub/model.pt", data) }, `invalid file name "sub/model.pt"`},
		{"DotDot", func(p *checkpoint.Pending) error { return p.Write("..", data) }, `invalid file name ".."`},
		{"Manifest", func(p *checkpoint.Pending) error { return p.Write(checkpoint.ManifestName, data) }, `invalid file name "manifest.json"`},
		{"Duplicate", func(p *checkpoint.Pending) error {
			if err := p.Write("model.pt", data); err != nil {
				return err
			}
			return p.Write("model.pt", data)
		}, `file "model.pt" written twice`},
		{"StepMismatch", func(p *checkpoint.Pending) error {
			_, err := p.Commit(testManifest(8))
			return err
		}, "manifest step 8 is not the step of the checkpoint"},
		{"UnknownReason", func(p *checkpoint.Pending) error {
			m := testManifest(7)
			m.Reason = "whim"
			_, err := p.Commit(m)
			return err
		}, `unknown reason "whim"`},
		{"NaNLoss", func(p *checkpoint.Pending) error {
			m := testManifest(7)
			m.Loss = math.NaN()
			_, err := p.Commit(m)
			return err
		}, "encode manifest: json: unsupported value: NaN"},
		{"TimeOutOfRange", func(p *checkpoint.Pending) error {
			m := testManifest(7)
			m.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
			_, err := p.Commit(m)
			return err
		}, "encode manifest: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, checkpoint.Options{})
			p, err := s.Begin(7)
			require.NoError(t, err)
			err = tc.do(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "commit checkpoint "+stepDir(dir, 7)+": ")
			assert.Contains(t, err.Error(), tc.msg)
			assert.Empty(t, entries(t, dir), "the temporary directory is removed")

			assert.ErrorContains(t, p.Write("other.pt", data), "already committed or abandoned")
			_, err = p.Commit(testManifest(7))
			assert.ErrorContains(t, err, "already committed or abandoned")
			assert.NoError(t, p.Cleanup())
		})
	}
}

func TestCleanup(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})

	p, err := s.Begin(1)
	require.NoError(t, err)
	require.NoError(t, p.Write("model.pt", []byte("w")))
	require.Len(t, entries(t, dir), 1)
	require.NoError(t, p.Cleanup())
	assert.Empty(t, entries(t, dir))
	assert.NoError(t, p.Cleanup(), "twice")
	_, err = p.Commit(testManifest(1))
	assert.ErrorContains(t, err, "already committed or abandoned")

	p, err = s.Begin(2)
	require.NoError(t, err)
	require.NoError(t, p.Write("model.pt", []byte("w")))
	_, err = p.Commit(testManifest(2))
	require.NoError(t, err)
	require.NoError(t, p.Cleanup(), "a no-op after Commit")
	assert.ErrorContains(t, p.Write("late.pt", []byte("w")), "already committed or abandoned")
	assert.Equal(t, []string{"step-00000002"}, entries(t, dir), "Cleanup and a late Write leave the committed checkpoint")
	_, err = checkpoint.Load(stepDir(dir, 2))
	assert.NoError(t, err)
}

func TestRetention(t *testing.T) {
	cases := []struct {
		name   string
		opt    checkpoint.Options
		values map[int64]float64 // metric "m" by step; steps without one lack it
		want   []int64
	}{
		{name: "KeepOne", opt: checkpoint.Options{Keep: 1}, want: []int64{6}},
		{name: "KeepNewest", opt: checkpoint.Options{Keep: 2}, want: []int64{5, 6}},
		{name: "KeepMoreThanSaved", opt: checkpoint.Options{Keep: 10}, want: []int64{1, 2, 3, 4, 5, 6}},
		{name: "BestMin", opt: checkpoint.Options{Keep: 2, BestMetric: "m", BestMode: "min"},
			values: map[int64]float64{1: .9, 2: .3, 3: .5, 4: .8, 5: .7, 6: .6}, want: []int64{2, 5, 6}},
		{name: "BestMax", opt: checkpoint.Options{Keep: 1, BestMetric: "m", BestMode: "max"},
			values: map[int64]float64{1: .1, 2: .2, 3: .9, 4: .5, 5: .4, 6: .3}, want: []int64{3, 6}},
		{name: "BestAmongNewest", opt: checkpoint.Options{Keep: 2, BestMetric: "m", BestMode: "min"},
			values: map[int64]float64{1: .9, 2: .8, 3: .7, 4: .6, 5: .5, 6: .4}, want: []int64{5, 6}},
		{name: "BestTieKeepsNewest", opt: checkpoint.Options{Keep: 1, BestMetric: "m", BestMode: "max"},
			values: map[int64]float64{1: .9, 2: .9, 3: .9, 4: .1, 5: .1, 6: .1}, want: []int64{3, 6}},
		{name: "BestOnlyWhereRecorded", opt: checkpoint.Options{Keep: 1, BestMetric: "m", BestMode: "min"},
			values: map[int64]float64{2: 5}, want: []int64{2, 6}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, tc.opt)
			for step := int64(1); step <= 6; step++ {
				save(t, s, step, func(m *checkpoint.Manifest) {
					m.Metrics = map[string]float64{}
					if v, ok := tc.values[step]; ok {
						m.Metrics["m"] = v
					}
				})
			}
			var want []string
			for _, step := range tc.want {
				want = append(want, checkpoint.DirName(step))
			}
			assert.Equal(t, want, entries(t, dir))
		})
	}
}

// TestRetentionAfterDurableCommit: old checkpoints are deleted only after the new one is renamed
// in and the run directory fsynced, each renamed to a .del- name and fsynced before removal.
func TestRetentionAfterDurableCommit(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := openStore(t, dir, checkpoint.Options{Keep: 1, FS: ffs})
	save(t, s, 1, nil)
	start := len(ffs.ops())
	save(t, s, 2, nil)

	var steps []string
	for _, o := range ffs.ops()[start:] {
		switch {
		case o.name == "rename" && o.to == stepDir(dir, 2):
			steps = append(steps, "publish")
		case o.name == "syncdir" && o.path == dir:
			steps = append(steps, "sync run dir")
		case o.name == "rename" && o.path == stepDir(dir, 1):
			require.True(t, strings.HasPrefix(filepath.Base(o.to), ".del-step-00000001-"), o.to)
			steps = append(steps, "rename old aside")
		case o.name == "removeall" && strings.Contains(o.path, ".del-step-00000001-"):
			steps = append(steps, "remove old")
		}
	}
	assert.Equal(t, []string{"publish", "sync run dir", "rename old aside", "sync run dir", "remove old"}, steps)
	assert.Equal(t, []string{"step-00000002"}, entries(t, dir))
}

// TestRetentionSkippedWhenNotDurable: a commit that fails at the rename or at the fsync of the run
// directory deletes nothing.
func TestRetentionSkippedWhenNotDurable(t *testing.T) {
	cases := []struct {
		name string
		fail func(dir string) func(o op) bool
		want []string
	}{
		{"Rename", func(dir string) func(o op) bool {
			return func(o op) bool { return o.name == "rename" }
		}, []string{"step-00000001"}},
		{"SyncRunDir", func(dir string) func(o op) bool {
			return func(o op) bool { return o.name == "syncdir" && o.path == dir }
		}, []string{"step-00000001", "step-00000002"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ffs := newFaultFS()
			s := openStore(t, dir, checkpoint.Options{Keep: 1, FS: ffs})
			save(t, s, 1, nil)
			ffs.fail = failOn(syscall.EIO, tc.fail(dir))
			c, err := attempt(s, 2, nil)
			assert.Nil(t, c)
			require.ErrorIs(t, err, syscall.EIO)
			assert.NotErrorIs(t, err, checkpoint.ErrRetention)
			assert.Equal(t, tc.want, entries(t, dir))
		})
	}
}

func TestRetentionError(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := openStore(t, dir, checkpoint.Options{Keep: 1, FS: ffs})
	save(t, s, 1, nil)
	ffs.fail = failOn(syscall.EBUSY, func(o op) bool { return o.name == "removeall" && strings.Contains(o.path, ".del-") })
	c, err := attempt(s, 2, nil)
	require.ErrorIs(t, err, checkpoint.ErrRetention)
	require.ErrorIs(t, err, syscall.EBUSY)
	require.NotNil(t, c, "the checkpoint is committed")
	assert.Equal(t, stepDir(dir, 2), c.Dir)
	assert.Contains(t, err.Error(), "checkpoint "+c.Dir+" committed, but deleting old checkpoints failed: ")

	ffs.fail = nil
	latest, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Equal(t, c.Dir, latest.Dir)
	require.Len(t, invalid, 1)
	assert.Contains(t, invalid[0].Dir, ".del-step-00000001-")
	assert.Equal(t, "unfinished checkpoint deletion", invalid[0].Reason)
	assert.Equal(t, []string{"step-00000002"}, entries(t, dir), "Latest removed the leftover")
}

func TestOptions(t *testing.T) {
	cases := []struct {
		name string
		opt  checkpoint.Options
		msg  string
	}{
		{"KeepZero", checkpoint.Options{}, "keep 0: must be at least 1"},
		{"ModeWithoutMetric", checkpoint.Options{Keep: 1, BestMode: "min"}, `best mode "min" without a best metric`},
		{"MetricWithoutMode", checkpoint.Options{Keep: 1, BestMetric: "val_loss"}, `best mode "": want min or max`},
		{"UnknownMode", checkpoint.Options{Keep: 1, BestMetric: "val_loss", BestMode: "avg"}, `best mode "avg": want min or max`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := checkpoint.Open(dir, tc.opt)
			assert.EqualError(t, err, "open checkpoint store "+dir+": "+tc.msg)
		})
	}
}

func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "x")
	s1, err := checkpoint.Open(dir, checkpoint.Options{Keep: 1})
	require.NoError(t, err, "Open creates the run directory")

	_, err = checkpoint.Open(dir, checkpoint.Options{Keep: 1})
	require.ErrorIs(t, err, checkpoint.ErrLocked)
	assert.EqualError(t, err, fmt.Sprintf("run dir %s is in use by another trainer (pid %d)", dir, os.Getpid()))

	require.NoError(t, s1.Close())
	require.NoError(t, s1.Close(), "twice")
	_, err = s1.Begin(1)
	assert.ErrorContains(t, err, "store is closed")
	_, _, err = s1.Latest()
	assert.ErrorContains(t, err, "store is closed")

	s2, err := checkpoint.Open(dir, checkpoint.Options{Keep: 1})
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}

func TestCommitAfterClose(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	p, err := s.Begin(1)
	require.NoError(t, err)
	require.NoError(t, p.Write("model.pt", []byte("w")))
	require.NoError(t, s.Close())
	_, err = p.Commit(testManifest(1))
	assert.ErrorContains(t, err, "store is closed")
	assert.Empty(t, entries(t, dir), "nothing committed without the lock, temporary directory removed")
}

// TestLockAcrossProcesses holds the lock in a child process: Open fails naming the child's pid,
// and works again once the child is SIGKILLed (flock dies with the process).
func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	_, err = checkpoint.Open(dir, checkpoint.Options{Keep: 1})
	require.ErrorIs(t, err, checkpoint.ErrLocked)
	assert.EqualError(t, err, fmt.Sprintf("run dir %s is in use by another trainer (pid %d)", dir, cmd.Process.Pid))

	require.NoError(t, cmd.Process.Kill())
	require.Error(t, cmd.Wait(), "killed")
	s, err := checkpoint.Open(dir, checkpoint.Options{Keep: 1})
	require.NoError(t, err, "a SIGKILLed holder leaves no stale lock")
	require.NoError(t, s.Close())
}
