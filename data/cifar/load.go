package cifar

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxNamesSize bounds the class names file (the official ones are under 1 KB).
const maxNamesSize = 1 << 16

// Load reads the official data set kind from path: Official(kind).Load(path).
func Load(path string, kind Kind) (train, test *Set, err error) {
	spec, err := Official(kind)
	if err != nil {
		return nil, nil, err
	}
	return spec.Load(path)
}

// Load reads the training and test splits of the data set described by sp from path, which is
// either
//
//   - the archive sp.Archive itself (any file name), streamed: nothing is extracted to disk;
//   - a directory holding the extracted files: the archive's top directory sp.Dir, or its parent,
//     or a directory holding the archive; tried in the order: files directly in path, in
//     path/sp.Dir, then the archive path/sp.Archive.
//
// Everything is checked: each data file holds exactly its Part's record count (a size that is not
// a whole number of records, or the wrong count, is an error saying what was expected), every
// label is in range, the names file names Classes classes, and an archive's gzip checksum is
// verified. A problem is a *DataError naming the file (and archive member) and, for a label, the
// 0-based record; a data set that is not there at all is a *DataError wrapping fs.ErrNotExist
// whose message says what to download and where to put it. Load never substitutes synthetic
// data. Other I/O errors (permissions, ...) are returned wrapped.
//
// The Sets are allocated once at their final size from sp, never from sizes read from the files.
func (sp Spec) Load(path string) (train, test *Set, err error) {
	if err := sp.validate(); err != nil {
		return nil, nil, err
	}
	archive, dir, err := sp.locate(path)
	if err != nil {
		return nil, nil, err
	}
	r := sp.newReading()
	if archive != "" {
		err = r.readArchive(archive)
	} else {
		err = r.readDir(dir)
	}
	if err != nil {
		return nil, nil, err
	}
	r.train.ClassNames, r.test.ClassNames = r.names, r.names
	return r.train, r.test, nil
}

// locate finds the data set at path: an archive to stream, or a directory holding the files.
func (sp *Spec) locate(p string) (archive, dir string, err error) {
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", sp.notFound(p, err)
	}
	if err != nil {
		return "", "", fmt.Errorf("open %s: %w", sp.Title, err)
	}
	if fi.Mode().IsRegular() {
		return p, "", nil
	}
	if !fi.IsDir() {
		return "", "", &DataError{Path: p, Msg: fmt.Sprintf("not a file or directory: want %s or a directory holding it or its extracted %s/ folder", sp.Archive, sp.Dir)}
	}
	for _, d := range []string{p, filepath.Join(p, sp.Dir)} {
		for _, f := range sp.files() {
			if _, err := os.Stat(filepath.Join(d, f)); err == nil {
				return "", d, nil
			}
		}
	}
	if a := filepath.Join(p, sp.Archive); isRegular(a) {
		return a, "", nil
	}
	return "", "", sp.notFound(p, fs.ErrNotExist)
}

func isRegular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// notFound is the error for a data set missing at p, saying what to download and where to put it.
func (sp *Spec) notFound(p string, err error) *DataError {
	where := fmt.Sprintf("put it (or its extracted %s/ folder) in %s", sp.Dir, p)
	if strings.HasSuffix(p, ".tar.gz") || strings.HasSuffix(p, ".tgz") {
		where = "save it as " + p
	}
	return &DataError{Path: p, Err: err,
		Msg: fmt.Sprintf("%s not found: download %s from %s and %s", sp.Title, sp.Archive, DownloadURL, where)}
}

// files returns the names of every file Load reads, relative to sp.Dir.
func (sp *Spec) files() []string {
	var names []string
	for _, p := range sp.parts() {
		names = append(names, p.File)
	}
	return append(names, sp.Names)
}

// reading is one Load in progress.
type reading struct {
	sp          *Spec
	train, test *Set
	names       []string
	parts       map[string]part // by file name, every data file
}

// part is where the records of one data file go.
type part struct {
	set     *Set
	first   int // index in set of the file's first record
	records int
}

func (sp *Spec) newReading() *reading {
	r := &reading{sp: sp, parts: make(map[string]part)}
	split := func(name string, ps []Part) *Set {
		n := 0
		for _, p := range ps {
			n += p.Records
		}
		s := &Set{Name: string(sp.Kind) + " " + name, Classes: sp.Classes, Images: make([]uint8, n*ImageLen), Labels: make([]int64, n)}
		first := 0
		for _, p := range ps {
			r.parts[p.File] = part{set: s, first: first, records: p.Records}
			first += p.Records
		}
		return s
	}
	r.train, r.test = split("train", sp.Train), split("test", sp.Test)
	return r
}

// readDir reads every file from the directory dir.
func (r *reading) readDir(dir string) error {
	for _, name := range r.sp.files() {
		p := filepath.Join(dir, name)
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return &DataError{Path: p, Err: err, Msg: fmt.Sprintf("missing: the %s data set in %s is incomplete (extract %s there again)", r.sp.Title, dir, r.sp.Archive)}
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", r.sp.Title, err)
		}
		err = r.readFile(f, p)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// readFile reads the data or names file f, opened from p.
func (r *reading) readFile(f *os.File, p string) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read %s: %w", r.sp.Title, err)
	}
	if !fi.Mode().IsRegular() {
		return &DataError{Path: p, Msg: "not a regular file"}
	}
	return r.read(bufio.NewReaderSize(f, 1<<16), filepath.Base(p), fi.Size(), p, "")
}

// readArchive streams the .tar.gz file p, reading the members it needs in whatever order they
// come, and reads the archive to its end so that gzip verifies its checksum.
func (r *reading) readArchive(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.sp.Title, err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return &DataError{Path: p, Msg: fmt.Sprintf("not a gzip file (%v): want %s from %s", err, r.sp.Archive, DownloadURL)}
	}
	want := make(map[string]string) // member name -> file name
	for _, name := range r.sp.files() {
		want[r.sp.Dir+"/"+name] = name
	}
	done := make(map[string]bool)
	last := ""
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return r.archiveErr(p, last, err)
		}
		member := path.Clean(hdr.Name)
		last = member
		name, ok := want[member]
		if !ok || hdr.Typeflag != tar.TypeReg {
			continue
		}
		if done[member] {
			return &DataError{Path: p, Member: member, Msg: "appears twice in the archive"}
		}
		done[member] = true
		if err := r.read(tr, name, hdr.Size, p, member); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return r.archiveErr(p, last, err)
	}
	for _, name := range r.sp.files() {
		if member := r.sp.Dir + "/" + name; !done[member] {
			return &DataError{Path: p, Member: member, Err: fs.ErrNotExist,
				Msg: fmt.Sprintf("missing from the archive: want %s from %s", r.sp.Archive, DownloadURL)}
		}
	}
	return nil
}

// archiveErr reports an error of the gzip or tar layer, after member last ("" at the start).
func (r *reading) archiveErr(p, last string, err error) error {
	if last == "" {
		return &DataError{Path: p, Msg: fmt.Sprintf("not a tar.gz archive (%v): want %s from %s", err, r.sp.Archive, DownloadURL)}
	}
	return &DataError{Path: p, Msg: fmt.Sprintf("corrupt or truncated archive after %s (%v): download %s again", last, err, r.sp.Archive)}
}

// read reads file name (the names file or a data file) of size bytes from rd; problems are
// reported in file p, member m.
func (r *reading) read(rd io.Reader, name string, size int64, p, m string) error {
	errf := func(format string, args ...any) error {
		return &DataError{Path: p, Member: m, Msg: fmt.Sprintf(format, args...)}
	}
	if name == r.sp.Names {
		return r.readNames(rd, size, errf)
	}
	pt := r.parts[name]
	rs := int64(r.sp.recordSize())
	if n, rem := size/rs, size%rs; rem != 0 {
		return errf("%d bytes: %d whole %d-byte records and %d bytes over, want %d records (truncated or not a %s file)", size, n, rs, rem, pt.records, r.sp.Title)
	} else if n != int64(pt.records) {
		return errf("%d records, want %d (truncated, or not the official %s)", n, pt.records, r.sp.Title)
	}
	var lab [2]byte
	labels := lab[:rs-ImageLen]
	for k := range pt.records {
		j := pt.first + k
		if _, err := io.ReadFull(rd, labels); err != nil {
			return readErr(errf, k, pt.records, err)
		}
		if _, err := io.ReadFull(rd, pt.set.Images[j*ImageLen:(j+1)*ImageLen]); err != nil {
			return readErr(errf, k, pt.records, err)
		}
		label := labels[len(labels)-1]
		if r.sp.Coarse > 0 {
			if int(labels[0]) >= r.sp.Coarse {
				return errf("record %d: coarse label %d out of range 0..%d", k, labels[0], r.sp.Coarse-1)
			}
			if int(label) >= r.sp.Classes {
				return errf("record %d: fine label %d out of range 0..%d", k, label, r.sp.Classes-1)
			}
		} else if int(label) >= r.sp.Classes {
			return errf("record %d: label %d out of range 0..%d", k, label, r.sp.Classes-1)
		}
		pt.set.Labels[j] = int64(label)
	}
	return nil
}

// readErr reports a failure to read record k of n.
func readErr(errf func(string, ...any) error, k, n int, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return errf("record %d of %d: %v (truncated or corrupt download?)", k, n, err)
}

// readNames reads the class names file: one name per line, trailing blank lines ignored.
func (r *reading) readNames(rd io.Reader, size int64, errf func(string, ...any) error) error {
	if size > maxNamesSize {
		return errf("%d bytes, too large for a class names file", size)
	}
	b, err := io.ReadAll(io.LimitReader(rd, size))
	if err == nil && int64(len(b)) < size {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return errf("%v (truncated or corrupt download?)", err)
	}
	lines := strings.Split(strings.TrimRight(string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))), "\n \t"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
		if lines[i] == "" {
			return errf("line %d: empty class name", i+1)
		}
	}
	if len(lines) != r.sp.Classes {
		return errf("%d class names, want %d", len(lines), r.sp.Classes)
	}
	r.names = lines
	return nil
}
