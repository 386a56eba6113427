package checkpoint_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/internal/testutil"
)

func TestLatestPicksNewest(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	for _, step := range []int64{100, 300, 200, 99_999_999, 2} {
		save(t, s, step, nil)
	}
	save(t, s, 123_456_789, nil) // nine digits sort after eight
	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Empty(t, invalid)
	assert.Equal(t, int64(123_456_789), c.Manifest.Step)
	assert.Equal(t, stepDir(dir, 123_456_789), c.Dir)
	assert.Equal(t, "step-123456789", filepath.Base(c.Dir))
}

func TestLatestEmpty(t *testing.T) {
	s := openStore(t, t.TempDir(), checkpoint.Options{})
	c, invalid, err := s.Latest()
	assert.Nil(t, c)
	assert.Empty(t, invalid)
	assert.ErrorIs(t, err, checkpoint.ErrNoCheckpoint)
}

// damages break the checkpoint directory ckpt in one way each; reason is part of the report.
var damages = []struct {
	name   string
	damage func(t *testing.T, ckpt string)
	reason string
}{
	{"Corrupt", func(t *testing.T, ckpt string) { testutil.Corrupt(t, filepath.Join(ckpt, "model.pt")) },
		"model.pt: sha256 mismatch"},
	{"Truncated", func(t *testing.T, ckpt string) { require.NoError(t, os.Truncate(filepath.Join(ckpt, "model.pt"), 10)) },
		"model.pt has 10 bytes, the manifest says"},
	{"Extended", func(t *testing.T, ckpt string) {
		f, err := os.OpenFile(filepath.Join(ckpt, "optim.pt"), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.Write([]byte("!"))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}, "optim.pt is larger than the 24 bytes of the manifest"},
	{"MissingPayload", func(t *testing.T, ckpt string) { require.NoError(t, os.Remove(filepath.Join(ckpt, "rng.pt"))) },
		"rng.pt is missing"},
	{"MissingManifest", func(t *testing.T, ckpt string) {
		require.NoError(t, os.Remove(filepath.Join(ckpt, checkpoint.ManifestName)))
	}, "manifest.json is missing"},
	{"UnknownVersion", func(t *testing.T, ckpt string) {
		editManifest(t, ckpt, func(m map[string]any) { m["format_version"] = 2 })
	}, "manifest.json: parse manifest: unsupported format version 2 (this build reads 1)"},
	{"GarbageManifest", func(t *testing.T, ckpt string) {
		require.NoError(t, os.WriteFile(filepath.Join(ckpt, checkpoint.ManifestName), []byte("{\"step\": 2"), 0o644))
	}, "manifest.json: parse manifest: unexpected EOF"},
	{"HugeManifest", func(t *testing.T, ckpt string) {
		require.NoError(t, os.WriteFile(filepath.Join(ckpt, checkpoint.ManifestName), make([]byte, 2<<20), 0o644))
	}, "manifest.json is larger than 1048576 bytes"},
	{"StepMismatch", func(t *testing.T, ckpt string) {
		editManifest(t, ckpt, func(m map[string]any) { m["step"] = 150 })
	}, "manifest.json says step 150, the directory name 200"},
	{"UnlistedFile", func(t *testing.T, ckpt string) {
		editManifest(t, ckpt, func(m map[string]any) {
			files := m["files"].([]any)
			files[0].(map[string]any)["name"] = "ghost.pt"
		})
	}, "ghost.pt is missing"},
}

// TestLatestFallsBack damages the newest of two checkpoints: Latest returns the older one,
// reports the newest with a reason and removes it.
func TestLatestFallsBack(t *testing.T) {
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, checkpoint.Options{})
			save(t, s, 100, nil)
			save(t, s, 200, nil)
			tc.damage(t, stepDir(dir, 200))

			c, invalid, err := s.Latest()
			require.NoError(t, err)
			assert.Equal(t, int64(100), c.Manifest.Step)
			require.Len(t, invalid, 1)
			assert.Equal(t, stepDir(dir, 200), invalid[0].Dir)
			assert.Contains(t, invalid[0].Reason, tc.reason)
			assert.Equal(t, []string{"step-00000100"}, entries(t, dir), "the invalid checkpoint is removed")

			_, invalid, err = s.Latest()
			require.NoError(t, err)
			assert.Empty(t, invalid)
		})
	}
}

// TestBefore: the newest valid checkpoint below a step, skipping (and removing) invalid ones
// there; the checkpoint of that step and newer ones are left alone.
func TestBefore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	for _, step := range []int64{100, 200, 300, 400} {
		save(t, s, step, nil)
	}
	testutil.Corrupt(t, filepath.Join(stepDir(dir, 200), "model.pt"))

	c, invalid, err := s.Before(300)
	require.NoError(t, err)
	assert.Equal(t, int64(100), c.Manifest.Step)
	require.Len(t, invalid, 1)
	assert.Equal(t, stepDir(dir, 200), invalid[0].Dir)
	assert.Equal(t, []string{"step-00000100", "step-00000300", "step-00000400"}, entries(t, dir))

	c, _, err = s.Before(400)
	require.NoError(t, err)
	assert.Equal(t, int64(300), c.Manifest.Step)
	_, _, err = s.Before(100)
	assert.ErrorIs(t, err, checkpoint.ErrNoCheckpoint)
	assert.ErrorContains(t, err, "checkpoint before step 100 in "+dir)
}

// TestNoValidCheckpointRemovesNothing: with no valid checkpoint, Latest reports every invalid
// directory and leftover, and removes none of them.
func TestNoValidCheckpointRemovesNothing(t *testing.T) {
	for _, tc := range damages {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, checkpoint.Options{})
			save(t, s, 200, nil)
			tc.damage(t, stepDir(dir, 200))
			leftover := filepath.Join(dir, ".tmp-step-00000300-123")
			require.NoError(t, os.Mkdir(leftover, 0o755))
			before := entries(t, dir)

			c, invalid, err := s.Latest()
			assert.Nil(t, c)
			require.ErrorIs(t, err, checkpoint.ErrNoCheckpoint)
			assert.EqualError(t, err, "latest checkpoint in "+dir+": no valid checkpoint")
			require.Len(t, invalid, 2)
			assert.Contains(t, invalid[0].Reason, tc.reason)
			assert.Equal(t, checkpoint.Invalid{Dir: leftover, Reason: "unfinished checkpoint write"}, invalid[1])
			assert.Equal(t, before, entries(t, dir))
		})
	}
}

// TestLeftovers: the leftovers of interrupted writes, deletions and replacements are reported
// and removed; other files of the run directory are left alone.
func TestLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	save(t, s, 100, nil)
	leftovers := map[string]string{
		".tmp-step-00000200-123":                  "unfinished checkpoint write",
		".del-step-00000050-0123456789abcdef":     "unfinished checkpoint deletion",
		".old-step-00000100-0123456789abcdef":     "replaced copy of step-00000100 left by an interrupted replacement",
		".old-garbage":                            "unfinished checkpoint replacement",
		".tmp-step-00000300-456/model.pt":         "",
		".del-step-00000040-0123456789abcdef/x/y": "",
	}
	for name := range leftovers {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, name), 0o755))
	}
	leftovers[".tmp-step-00000300-456"] = "unfinished checkpoint write"
	leftovers[".del-step-00000040-0123456789abcdef"] = "unfinished checkpoint deletion"
	others := []string{"config.yaml", "events.jsonl", "step-1", "step-0000000x", "notes"}
	for _, name := range others[:4] {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "notes"), 0o755))

	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Equal(t, int64(100), c.Manifest.Step)
	got := map[string]string{}
	for _, inv := range invalid {
		got[filepath.Base(inv.Dir)] = inv.Reason
	}
	for name, reason := range leftovers {
		if reason == "" {
			continue
		}
		assert.Equal(t, reason, got[name], name)
		delete(got, name)
	}
	assert.Empty(t, got, "nothing else reported")
	assert.ElementsMatch(t, append(others, "step-00000100"), entries(t, dir))
}

// TestLatestLeavesLivePending: the temporary directory of a checkpoint being written by this
// store is neither reported nor removed.
func TestLatestLeavesLivePending(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	save(t, s, 100, nil)
	p, err := s.Begin(200)
	require.NoError(t, err)
	require.NoError(t, p.Write("model.pt", []byte("w")))

	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Empty(t, invalid)
	assert.Equal(t, int64(100), c.Manifest.Step)

	_, err = p.Commit(testManifest(200))
	require.NoError(t, err)
	c, _, err = s.Latest()
	require.NoError(t, err)
	assert.Equal(t, int64(200), c.Manifest.Step)
}

// TestInterruptedReplace is a crash between the two renames of a replacement: the only copy of
// the step sits under its .old- name, the new one in a temporary directory. Latest renames the
// old copy back.
func TestInterruptedReplace(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	save(t, s, 100, nil)
	parked := filepath.Join(dir, ".old-step-00000100-0123456789abcdef")
	require.NoError(t, os.Rename(stepDir(dir, 100), parked))
	tmp := filepath.Join(dir, ".tmp-step-00000100-42")
	require.NoError(t, os.Mkdir(tmp, 0o755))

	valid, invalid, err := checkpoint.List(dir)
	require.NoError(t, err)
	assert.Empty(t, valid)
	assert.ElementsMatch(t, []checkpoint.Invalid{
		{Dir: parked, Reason: "copy of step-00000100 set aside by an interrupted replacement (Latest renames it back)"},
		{Dir: tmp, Reason: "unfinished checkpoint write"},
	}, invalid)

	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Equal(t, stepDir(dir, 100), c.Dir)
	assert.Equal(t, []checkpoint.Invalid{{Dir: tmp, Reason: "unfinished checkpoint write"}}, invalid)
	assert.Equal(t, []string{"step-00000100"}, entries(t, dir))
}

// TestUnreadableNotRemoved: a checkpoint that cannot be read (an I/O or permission error, not
// proven invalid) is skipped and reported, never removed.
func TestUnreadableNotRemoved(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := openStore(t, dir, checkpoint.Options{FS: ffs})
	save(t, s, 100, nil)
	save(t, s, 200, nil)
	ffs.fail = failOn(syscall.EIO, func(o op) bool {
		return o.name == "open" && o.path == filepath.Join(stepDir(dir, 200), "model.pt")
	})

	c, invalid, err := s.Latest()
	require.NoError(t, err)
	assert.Equal(t, int64(100), c.Manifest.Step)
	assert.Equal(t, []checkpoint.Invalid{{Dir: stepDir(dir, 200), Reason: "open model.pt: input/output error"}}, invalid)
	assert.Equal(t, []string{"step-00000100", "step-00000200"}, entries(t, dir))

	ffs.fail = nil
	c, _, err = s.Latest()
	require.NoError(t, err)
	assert.Equal(t, int64(200), c.Manifest.Step)
}

// TestLatestVerifiesOnlyWhatItReturns: the payloads of older checkpoints are not read.
func TestLatestVerifiesOnlyWhatItReturns(t *testing.T) {
	dir := t.TempDir()
	ffs := newFaultFS()
	s := openStore(t, dir, checkpoint.Options{FS: ffs})
	for _, step := range []int64{1, 2, 3} {
		save(t, s, step, nil)
	}
	testutil.Corrupt(t, filepath.Join(stepDir(dir, 3), "model.pt"))
	start := len(ffs.ops())
	c, _, err := s.Latest()
	require.NoError(t, err)
	assert.Equal(t, int64(2), c.Manifest.Step)
	for _, o := range ffs.ops()[start:] {
		if o.name == "open" {
			assert.NotContains(t, o.path, checkpoint.DirName(1))
		}
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	for _, step := range []int64{300, 100, 200} {
		save(t, s, step, nil)
	}
	testutil.Corrupt(t, filepath.Join(stepDir(dir, 200), "optim.pt"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, ".tmp-step-00000400-1"), 0o755))
	before := entries(t, dir)

	valid, invalid, err := checkpoint.List(dir)
	require.NoError(t, err)
	require.Len(t, valid, 2)
	assert.Equal(t, int64(100), valid[0].Manifest.Step)
	assert.Equal(t, int64(300), valid[1].Manifest.Step)
	assert.Equal(t, []checkpoint.Invalid{
		{Dir: stepDir(dir, 200), Reason: "optim.pt: sha256 mismatch"},
		{Dir: filepath.Join(dir, ".tmp-step-00000400-1"), Reason: "unfinished checkpoint write"},
	}, invalid)
	assert.Equal(t, before, entries(t, dir), "List changes nothing")

	_, _, err = checkpoint.List(filepath.Join(dir, "absent"))
	assert.ErrorContains(t, err, "list checkpoints in "+filepath.Join(dir, "absent")+": ")
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	save(t, s, 100, nil)

	copied := filepath.Join(dir, "export")
	require.NoError(t, os.Rename(stepDir(dir, 100), copied))
	_, err := checkpoint.Load(copied)
	assert.EqualError(t, err, "load checkpoint "+copied+": the directory name is not step-NNNNNNNN")

	require.NoError(t, os.Rename(copied, stepDir(dir, 101)))
	_, err = checkpoint.Load(stepDir(dir, 101))
	assert.EqualError(t, err, "load checkpoint "+stepDir(dir, 101)+": manifest.json says step 100, the directory name 101")
}

// TestReadFileVerifies: ReadFile checks the file again, since it may change after Latest.
func TestReadFileVerifies(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, checkpoint.Options{})
	save(t, s, 100, nil)
	c, _, err := s.Latest()
	require.NoError(t, err)

	testutil.Corrupt(t, filepath.Join(c.Dir, "model.pt"))
	_, err = c.ReadFile("model.pt")
	assert.EqualError(t, err, "read checkpoint "+c.Dir+": model.pt: sha256 mismatch")
	_, err = c.ReadFile("ghost.pt")
	assert.EqualError(t, err, "read checkpoint "+c.Dir+`: no file "ghost.pt" in the manifest`)
	data, err := c.ReadFile("optim.pt")
	require.NoError(t, err)
	assert.Equal(t, payload(100)[1].data, data)
}
