// Package checkpointtest is test support for code that writes checkpoints: a file system that
// slows checkpoint writes down, so that a crash test can kill a trainer in the middle of one.
// Only tests and binaries built with -tags testhooks import it: a normal build of spottrain
// holds none of it.
package checkpointtest

import (
	"time"

	"spottrain/checkpoint"
)

// SlowFS returns inner, slowed down: every Write on a file it created first sleeps perWrite.
// The store writes payloads in chunks of at most 1 MiB, so a crash test can kill the process in
// the middle of a checkpoint write.
func SlowFS(inner checkpoint.FS, perWrite time.Duration) checkpoint.FS {
	return slowFS{FS: inner, perWrite: perWrite}
}

type slowFS struct {
	checkpoint.FS
	perWrite time.Duration
}

func (s slowFS) Create(name string) (checkpoint.File, error) {
	f, err := s.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return slowFile{File: f, perWrite: s.perWrite}, nil
}

type slowFile struct {
	checkpoint.File
	perWrite time.Duration
}

func (f slowFile) Write(p []byte) (int, error) {
	time.Sleep(f.perWrite)
	return f.File.Write(p)
}
