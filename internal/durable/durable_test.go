package durable_test

import (
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/internal/durable"
	"spottrain/internal/testutil"
)

// temporaries returns the temporary files left anywhere under dir.
func temporaries(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	require.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if strings.Contains(d.Name(), ".tmp-") {
			found = append(found, path)
		}
		return err
	}))
	return found
}

func read(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

func TestWriteFile(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to write
		// files are the files (not links) that must hold the new content afterwards, relative
		// to dir; links are the links that must stay links.
		files, links []string
		want         []string // the entries of dir afterwards: no temporary file left
	}{
		{
			name:  "New",
			setup: func(t *testing.T, dir string) string { return filepath.Join(dir, "out.json") },
			files: []string{"out.json"},
			want:  []string{"out.json"},
		},
		{
			name: "Replace",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "out.json"), []byte("old content, longer than the new"), 0o600))
				return filepath.Join(dir, "out.json")
			},
			files: []string{"out.json"},
			want:  []string{"out.json"},
		},
		{
			name: "Symlink",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.Mkdir(filepath.Join(dir, "real"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "real", "out.json"), []byte("old"), 0o644))
				require.NoError(t, os.Symlink("real/out.json", filepath.Join(dir, "link.json")))
				return filepath.Join(dir, "link.json")
			},
			files: []string{"real/out.json"},
			links: []string{"link.json"},
			want:  []string{"link.json", "real"},
		},
		{
			name: "SymlinkChainThroughLinkedFolder",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "out.json"), []byte("old"), 0o644))
				require.NoError(t, os.Symlink("a/b", filepath.Join(dir, "deep")))
				// deep/../out.json is a/out.json to the kernel, not ./out.json.
				require.NoError(t, os.Symlink("deep/../out.json", filepath.Join(dir, "hop")))
				require.NoError(t, os.Symlink("hop", filepath.Join(dir, "link.json")))
				return filepath.Join(dir, "link.json")
			},
			files: []string{"a/out.json"},
			links: []string{"link.json", "hop", "deep"},
			want:  []string{"a", "deep", "hop", "link.json"},
		},
		{
			name: "DanglingSymlink",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.Symlink("target.json", filepath.Join(dir, "link.json")))
				return filepath.Join(dir, "link.json")
			},
			files: []string{"target.json"},
			links: []string{"link.json"},
			want:  []string{"link.json", "target.json"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			require.NoError(t, durable.WriteFile(path, []byte("new"), 0o640))
			assert.Equal(t, "new", read(t, path))
			for _, f := range tt.files {
				info, err := os.Lstat(filepath.Join(dir, f))
				require.NoError(t, err)
				assert.True(t, info.Mode().IsRegular(), "%s is a regular file", f)
				assert.Equal(t, fs.FileMode(0o640), info.Mode().Perm(), "%s has the new mode, not the old one", f)
				assert.Equal(t, "new", read(t, filepath.Join(dir, f)))
			}
			for _, l := range tt.links {
				info, err := os.Lstat(filepath.Join(dir, l))
				require.NoError(t, err)
				assert.Equal(t, fs.ModeSymlink, info.Mode().Type(), "%s is still a link", l)
			}
			assert.Equal(t, tt.want, testutil.DirNames(t, dir))
			assert.Empty(t, temporaries(t, dir))
		})
	}
}

func TestRefusesNonRegular(t *testing.T) {
	for _, tt := range []struct {
		name  string
		setup func(t *testing.T, dir string) string // returns the path to write
		want  string                                // the error, with DIR for dir
	}{
		{
			name:  "DevNull",
			setup: func(t *testing.T, dir string) string { return "/dev/null" },
			want:  "refusing to replace /dev/null: it is a character device, not a regular file",
		},
		{
			name:  "DevFull",
			setup: func(t *testing.T, dir string) string { return "/dev/full" },
			want:  "refusing to replace /dev/full: it is a character device, not a regular file",
		},
		{
			name: "Folder",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.Mkdir(filepath.Join(dir, "out"), 0o755))
				return filepath.Join(dir, "out")
			},
			want: "refusing to replace DIR/out: it is a folder, not a regular file",
		},
		{
			name: "Socket",
			setup: func(t *testing.T, dir string) string {
				l, err := net.Listen("unix", filepath.Join(dir, "sock"))
				require.NoError(t, err)
				t.Cleanup(func() { l.Close() })
				return filepath.Join(dir, "sock")
			},
			want: "refusing to replace DIR/sock: it is a socket, not a regular file",
		},
		{
			name: "NamedPipe",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
				return filepath.Join(dir, "fifo")
			},
			want: "refusing to replace DIR/fifo: it is a named pipe, not a regular file",
		},
		{
			name: "SymlinkToDevice",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.Symlink("/dev/null", filepath.Join(dir, "out")))
				return filepath.Join(dir, "out")
			},
			want: "refusing to replace DIR/out: it links to /dev/null, which is a character device, not a regular file",
		},
		{
			name: "SymlinkLoop",
			setup: func(t *testing.T, dir string) string {
				require.NoError(t, os.Symlink("b", filepath.Join(dir, "a")))
				require.NoError(t, os.Symlink("a", filepath.Join(dir, "b")))
				return filepath.Join(dir, "a")
			},
			want: "replace DIR/a: too many levels of symbolic links",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tt.setup(t, dir)
			if _, err := os.Lstat(path); err != nil {
				t.Skipf("no %s here: %v", path, err)
			}
			before := testutil.DirNames(t, dir)
			err := durable.WriteFile(path, []byte("new"), 0o644)
			require.Error(t, err)
			assert.Equal(t, strings.ReplaceAll(tt.want, "DIR", dir), err.Error())
			_, err = durable.Create(path, 0o644)
			require.Error(t, err, "Create refuses it too")
			assert.Equal(t, before, testutil.DirNames(t, dir), "nothing created")
		})
	}
}

func TestCleanup(t *testing.T) {
	for _, tt := range []struct {
		name   string
		commit bool
		want   string // the content of the destination afterwards
	}{
		{name: "AfterFailure", commit: false, want: "old"},
		{name: "AfterCommitIsNoOp", commit: true, want: "new"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.csv")
			require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
			p, err := durable.Create(path, 0o644)
			require.NoError(t, err)
			_, err = p.Write([]byte("new"))
			require.NoError(t, err)
			if tt.commit {
				require.NoError(t, p.Commit())
			}
			require.NoError(t, p.Cleanup())
			require.NoError(t, p.Cleanup(), "twice")
			assert.Equal(t, tt.want, read(t, path))
			assert.Equal(t, []string{"out.csv"}, testutil.DirNames(t, dir), "no temporary file left")
			assert.EqualError(t, p.Commit(), "replace "+path+": already committed or cleaned up")
		})
	}
}

// TestCrashBeforeRename: a process killed while it writes the new content (here: stopped
// without Commit or Cleanup) leaves the old content whole, and one temporary file beside it.
func TestCrashBeforeRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "metrics.json")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	p, err := durable.Create(path, 0o644)
	require.NoError(t, err)
	_, err = p.Write([]byte("half of the n"))
	require.NoError(t, err)

	assert.Equal(t, "old", read(t, path))
	names := testutil.DirNames(t, dir)
	require.Len(t, names, 2)
	assert.Equal(t, "metrics.json", names[1])
	assert.Regexp(t, `^\.metrics\.json\.tmp-[0-9a-f]{16}$`, names[0])
	require.NoError(t, p.Cleanup())
}

// TestWriteError runs WriteFile under a file size limit (in a child process: the limit is the
// whole process's), so that its write fails half way: the error names the destination, the old
// content stays, and no temporary file is left.
func TestWriteError(t *testing.T) {
	if path := os.Getenv("DURABLE_TEST_WRITE_ERROR"); path != "" {
		signal.Ignore(syscall.SIGXFSZ) // a write past the limit then fails with EFBIG
		require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1 << 10, Max: 1 << 10}))
		err := durable.WriteFile(path, make([]byte, 1<<20), 0o644)
		require.ErrorIs(t, err, syscall.EFBIG)
		assert.EqualError(t, err, "write "+path+": file too large")
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "report.md")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	cmd := exec.Command(os.Args[0], "-test.run=^TestWriteError$", "-test.v")
	cmd.Env = append(os.Environ(), "DURABLE_TEST_WRITE_ERROR="+path)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the child failed:\n%s", out)
	assert.Equal(t, "old", read(t, path))
	assert.Equal(t, []string{"report.md"}, testutil.DirNames(t, dir), "no temporary file left")
}

func TestCreateInMissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "out.json")
	err := durable.WriteFile(path, []byte("new"), 0o644)
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.EqualError(t, err, "replace "+path+": no such file or directory")
}

func TestSyncDir(t *testing.T) {
	require.NoError(t, durable.SyncDir(t.TempDir()))
	missing := filepath.Join(t.TempDir(), "gone")
	err := durable.SyncDir(missing)
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.Contains(t, err.Error(), missing)
}
