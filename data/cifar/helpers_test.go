package cifar_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"spottrain/data/cifar"
)

// cifar10Names are the official CIFAR-10 class names, in label order.
var cifar10Names = []string{"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"}

// Record counts of the fixtures: CIFAR-10 has five training files of tiny10Train records each.
const (
	tiny10Train  = 2
	tiny100Train = 5
	tinyTest     = 3
)

// fixture is a tiny data set in the official binary format: the official Spec with small record
// counts, the files' contents, and the Sets Load must return.
type fixture struct {
	spec        cifar.Spec
	files       map[string][]byte // by file name in spec.Dir
	train, test *cifar.Set
}

// newFixture returns a fixture of kind. Labels cycle through their whole range (the largest
// included), pixels are a different byte pattern in every record.
func newFixture(t *testing.T, kind cifar.Kind) *fixture {
	t.Helper()
	spec, err := cifar.Official(kind)
	require.NoError(t, err)
	var names []string
	perPart := tiny100Train
	if kind == cifar.CIFAR10 {
		names, perPart = cifar10Names, tiny10Train
	} else {
		for k := range spec.Classes {
			names = append(names, fmt.Sprintf("fine_%02d", k))
		}
	}
	f := &fixture{spec: spec, files: make(map[string][]byte)}
	f.train = &cifar.Set{Name: string(kind) + " train", Classes: spec.Classes, ClassNames: names}
	f.test = &cifar.Set{Name: string(kind) + " test", Classes: spec.Classes, ClassNames: names}
	for k := range spec.Train {
		spec.Train[k].Records = perPart
	}
	spec.Test[0].Records = tinyTest
	record := 0 // over all files, so every record differs
	for _, split := range []struct {
		parts []cifar.Part
		set   *cifar.Set
	}{{spec.Train, f.train}, {spec.Test, f.test}} {
		for _, p := range split.parts {
			var b bytes.Buffer
			for range p.Records {
				fine := record * 37 % spec.Classes
				if record%7 == 3 {
					fine = spec.Classes - 1
				}
				if spec.Coarse > 0 {
					b.WriteByte(byte(record * 19 % spec.Coarse)) // 19 for record 1
				}
				b.WriteByte(byte(fine))
				img := make([]byte, cifar.ImageLen)
				for j := range img {
					img[j] = byte(j*7 + record*13 + j/1024*101)
				}
				b.Write(img)
				split.set.Labels = append(split.set.Labels, int64(fine))
				split.set.Images = append(split.set.Images, img...)
				record++
			}
			f.files[p.File] = b.Bytes()
		}
	}
	f.files[spec.Names] = []byte(strings.Join(names, "\n") + "\n\n")
	f.spec = spec
	return f
}

// recordSize returns the size of one record of f's files.
func (f *fixture) recordSize() int {
	if f.spec.Coarse > 0 {
		return 2 + cifar.ImageLen
	}
	return 1 + cifar.ImageLen
}

// setByte sets byte off of record k of file name.
func (f *fixture) setByte(name string, k, off int, v byte) {
	f.files[name][k*f.recordSize()+off] = v
}

// writeDir writes f's files into dir, creating it.
func (f *fixture) writeDir(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	for name, data := range f.files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
}

// tarEntry is one member of a test archive; data nil makes a directory entry.
type tarEntry struct {
	name string
	data []byte
}

// entries returns f's files as archive members under spec.Dir, after the directory entry, test
// files first (Load must not depend on the order).
func (f *fixture) entries() []tarEntry {
	es := []tarEntry{{name: f.spec.Dir + "/"}}
	for _, p := range f.spec.Test {
		es = append(es, tarEntry{f.spec.Dir + "/" + p.File, f.files[p.File]})
	}
	es = append(es, tarEntry{f.spec.Dir + "/" + f.spec.Names, f.files[f.spec.Names]})
	for _, p := range f.spec.Train {
		es = append(es, tarEntry{f.spec.Dir + "/" + p.File, f.files[p.File]})
	}
	return es
}

// targz returns a .tar.gz archive of the entries.
func targz(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	return gzipped(t, tarball(t, entries))
}

// tarball returns a tar archive of the entries.
func tarball(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.data)), Typeflag: tar.TypeReg}
		if e.data == nil {
			hdr.Mode, hdr.Typeflag = 0o755, tar.TypeDir
		}
		require.NoError(t, tw.WriteHeader(hdr))
		_, err := tw.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	return b.Bytes()
}

// gzipped returns data compressed with gzip.
func gzipped(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes()
}

// wantDataError asserts that err is a one-line *cifar.DataError for path and member whose message
// contains every fragment.
func wantDataError(t *testing.T, err error, path, member string, fragments ...string) {
	t.Helper()
	var de *cifar.DataError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want *cifar.DataError", err, err)
	}
	if de.Path != path || de.Member != member {
		t.Errorf("error at path %q member %q, want %q, %q (%v)", de.Path, de.Member, path, member, err)
	}
	prefix := path + ": "
	if member != "" {
		prefix += member + ": "
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		t.Errorf("error %q does not start with %q", msg, prefix)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error %q is not one line", msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not mention %q", msg, f)
		}
	}
}
