package checkpoint

import (
	"io"
	"io/fs"
	"os"

	"spottrain/internal/durable"
)

// FS is the file system seam of the store: every file operation of the package (but the lock)
// goes through it, so that tests can inject failures. Errors should be those of package os
// (*fs.PathError and friends wrapping a syscall.Errno).
type FS interface {
	// MkdirAll creates a directory and its parents, like os.MkdirAll.
	MkdirAll(path string, perm fs.FileMode) error
	// MkdirTemp creates a new directory in dir whose name starts with prefix, like os.MkdirTemp.
	MkdirTemp(dir, prefix string) (string, error)
	// Create creates a new file for writing; it fails if name exists.
	Create(name string) (File, error)
	// Open opens a file for reading.
	Open(name string) (io.ReadCloser, error)
	// ReadDir lists a directory, like os.ReadDir.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Rename renames a file or directory, like os.Rename: renaming a directory onto a non-empty
	// one fails with an error matching fs.ErrExist.
	Rename(oldpath, newpath string) error
	// RemoveAll removes a tree, like os.RemoveAll.
	RemoveAll(path string) error
	// SyncDir fsyncs a directory, making the creation, renaming and removal of its entries
	// durable.
	SyncDir(path string) error
}

// File is a file being written through an FS.
type File interface {
	io.Writer
	// Sync flushes the file's content to stable storage (fsync).
	Sync() error
	Close() error
}

// OSFS is the FS of the operating system, the default of Options.FS.
type OSFS struct{}

// MkdirAll implements FS.
func (OSFS) MkdirAll(path string, perm fs.FileMode) error { return os.MkdirAll(path, perm) }

// MkdirTemp implements FS.
func (OSFS) MkdirTemp(dir, prefix string) (string, error) { return os.MkdirTemp(dir, prefix) }

// Create implements FS: the file is created with O_EXCL and mode 0644.
func (OSFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open implements FS.
func (OSFS) Open(name string) (io.ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReadDir implements FS.
func (OSFS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// Rename implements FS.
func (OSFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// RemoveAll implements FS.
func (OSFS) RemoveAll(path string) error { return os.RemoveAll(path) }

// SyncDir implements FS with durable.SyncDir.
func (OSFS) SyncDir(path string) error { return durable.SyncDir(path) }
