package checkpoint_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/internal/testutil"
)

// file is one payload file; payloads are written in this order.
type file struct {
	name string
	data []byte
}

func payload(step int64) []file {
	return []file{
		{"model.pt", bytes.Repeat([]byte(fmt.Sprintf("model weights at step %d;", step)), 100)},
		{"optim.pt", []byte(fmt.Sprintf("adam moments at step %d", step))},
		{"rng.pt", []byte{}},
	}
}

func testManifest(step int64) checkpoint.Manifest {
	return checkpoint.Manifest{
		RunID:          "solar-lstm-1",
		ConfigHash:     "9f86d081884c7d65",
		Epoch:          3,
		Step:           step,
		Batch:          17,
		Loss:           0.125,
		Metrics:        map[string]float64{"val_loss": 0.25},
		DataSeed:       1<<63 + 7, // beyond float64 precision: must survive JSON exactly
		ComputeSeconds: 3600.5,
		Libtorch:       "1.13.1",
		Device:         "cpu",
		Reason:         codes.Periodic,
		Time:           time.Date(2025, 11, 24, 20, 42, 7, 123456789, time.UTC),
	}
}

func openStore(t *testing.T, dir string, opt checkpoint.Options) *checkpoint.Store {
	t.Helper()
	if opt.Keep == 0 {
		opt.Keep = 100
	}
	s, err := checkpoint.Open(dir, opt)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// attempt writes payload(step) and commits m (testManifest(step) changed by edit, if not nil).
// Unlike a real caller, it defers no Cleanup: the tests check that a failure cleans up by itself.
func attempt(s *checkpoint.Store, step int64, edit func(*checkpoint.Manifest)) (*checkpoint.Checkpoint, error) {
	p, err := s.Begin(step)
	if err != nil {
		return nil, err
	}
	for _, f := range payload(step) {
		if err := p.Write(f.name, f.data); err != nil {
			return nil, err
		}
	}
	m := testManifest(step)
	if edit != nil {
		edit(&m)
	}
	return p.Commit(m)
}

func save(t *testing.T, s *checkpoint.Store, step int64, edit func(*checkpoint.Manifest)) *checkpoint.Checkpoint {
	t.Helper()
	c, err := attempt(s, step, edit)
	require.NoError(t, err)
	return c
}

// entries lists dir, but the lock file.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	return slices.DeleteFunc(testutil.DirNames(t, dir), func(name string) bool { return name == checkpoint.LockName })
}

func fileEntries(step int64) []checkpoint.FileEntry {
	var fes []checkpoint.FileEntry
	for _, f := range payload(step) {
		sum := sha256.Sum256(f.data)
		fes = append(fes, checkpoint.FileEntry{Name: f.name, Size: int64(len(f.data)), SHA256: hex.EncodeToString(sum[:])})
	}
	sort.Slice(fes, func(i, j int) bool { return fes[i].Name < fes[j].Name })
	return fes
}

// editManifest rewrites the manifest of a checkpoint directory as generic JSON.
func editManifest(t *testing.T, ckptDir string, edit func(map[string]any)) {
	t.Helper()
	path := filepath.Join(ckptDir, checkpoint.ManifestName)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(data, &raw))
	edit(raw)
	data, err = json.Marshal(raw)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func stepDir(dir string, step int64) string { return filepath.Join(dir, checkpoint.DirName(step)) }
