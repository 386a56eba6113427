// Package testutil holds the helpers that tests of several packages share: writing input files,
// listing a folder, corrupting a file. Each fails the test on error; none is used outside tests.
package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// WriteFile writes content to path (mode 0644), creating its folder and the folders above if
// needed, and returns path.
func WriteFile[T ~string | ~[]byte](t testing.TB, path string, content T) string {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// WriteTemp writes content to a file name in a new temporary folder of the test (t.TempDir())
// and returns its path.
func WriteTemp[T ~string | ~[]byte](t testing.TB, name string, content T) string {
	t.Helper()
	return WriteFile(t, filepath.Join(t.TempDir(), name), content)
}

// DirNames returns the names of the entries of dir, sorted.
func DirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// Corrupt flips every bit of the middle byte of path, a file that must not be empty, keeping its
// size: its checksum no longer matches.
func Corrupt(t testing.TB, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotEmpty(t, data, "%s is empty: nothing to corrupt", path)
	data[len(data)/2] ^= 0xff
	require.NoError(t, os.WriteFile(path, data, 0o644))
}
