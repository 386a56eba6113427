package checkpoint_test

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"spottrain/checkpoint"
)

// op is one operation of a faultFS: name is "mkdirtemp", "create", "write", "sync", "open",
// "rename" (path to to), "removeall" or "syncdir".
type op struct{ name, path, to string }

// faultFS is the OS file system with injected failures, logging its operations.
type faultFS struct {
	checkpoint.FS
	// fail, if set, returns the error of an operation that must fail.
	fail func(o op) error
	// noSpace maps a file base name to the bytes it accepts before writes fail with ENOSPC.
	noSpace map[string]int64

	mu  sync.Mutex
	log []op
}

func newFaultFS() *faultFS { return &faultFS{FS: checkpoint.OSFS{}, noSpace: map[string]int64{}} }

func (f *faultFS) do(o op) error {
	f.mu.Lock()
	f.log = append(f.log, o)
	fail := f.fail
	f.mu.Unlock()
	if fail == nil {
		return nil
	}
	return fail(o)
}

func (f *faultFS) ops() []op {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]op(nil), f.log...)
}

func (f *faultFS) MkdirTemp(dir, prefix string) (string, error) {
	if err := f.do(op{name: "mkdirtemp", path: filepath.Join(dir, prefix)}); err != nil {
		return "", err
	}
	return f.FS.MkdirTemp(dir, prefix)
}

func (f *faultFS) Create(name string) (checkpoint.File, error) {
	if err := f.do(op{name: "create", path: name}); err != nil {
		return nil, err
	}
	file, err := f.FS.Create(name)
	if err != nil {
		return nil, err
	}
	limit, ok := f.noSpace[filepath.Base(name)]
	if !ok {
		limit = -1
	}
	return &faultFile{File: file, fs: f, name: name, limit: limit}, nil
}

func (f *faultFS) Open(name string) (io.ReadCloser, error) {
	if err := f.do(op{name: "open", path: name}); err != nil {
		return nil, err
	}
	return f.FS.Open(name)
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.do(op{name: "rename", path: oldpath, to: newpath}); err != nil {
		return err
	}
	return f.FS.Rename(oldpath, newpath)
}

func (f *faultFS) RemoveAll(path string) error {
	if err := f.do(op{name: "removeall", path: path}); err != nil {
		return err
	}
	return f.FS.RemoveAll(path)
}

func (f *faultFS) SyncDir(path string) error {
	if err := f.do(op{name: "syncdir", path: path}); err != nil {
		return err
	}
	return f.FS.SyncDir(path)
}

type faultFile struct {
	checkpoint.File
	fs      *faultFS
	name    string
	limit   int64 // bytes accepted before ENOSPC; -1: no limit
	written int64
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.do(op{name: "write", path: f.name}); err != nil {
		return 0, err
	}
	if f.limit >= 0 && f.written+int64(len(p)) > f.limit {
		n, err := f.File.Write(p[:f.limit-f.written])
		f.written += int64(n)
		if err == nil {
			err = &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
		}
		return n, err
	}
	n, err := f.File.Write(p)
	f.written += int64(n)
	return n, err
}

func (f *faultFile) Sync() error {
	if err := f.fs.do(op{name: "sync", path: f.name}); err != nil {
		return err
	}
	return f.File.Sync()
}

// failOn returns a fail function failing the operations that match with errno, as os would.
func failOn(errno syscall.Errno, match func(o op) bool) func(o op) error {
	return func(o op) error {
		if !match(o) {
			return nil
		}
		if o.name == "rename" {
			return &os.LinkError{Op: "rename", Old: o.path, New: o.to, Err: errno}
		}
		return &fs.PathError{Op: o.name, Path: o.path, Err: errno}
	}
}
