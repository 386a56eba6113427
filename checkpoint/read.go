package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"sort"
	"strings"
)

// maxManifest bounds the bytes read from a manifest: a larger one is invalid.
const maxManifest = 1 << 20

// Checkpoint is a checkpoint that was verified when it was returned: its manifest is valid and
// every payload file had the listed size and SHA-256.
type Checkpoint struct {
	Dir      string // the checkpoint directory, runDir/step-NNNNNNNN
	Manifest Manifest
	fs       FS // nil: OSFS
}

// ReadFile returns the content of the payload file name, verified again against the size and
// SHA-256 of the manifest (the file may have changed since the checkpoint was verified).
func (c *Checkpoint) ReadFile(name string) ([]byte, error) {
	fsys := c.fs
	if fsys == nil {
		fsys = OSFS{}
	}
	for _, f := range c.Manifest.Files {
		if f.Name == name {
			buf := bytes.NewBuffer(make([]byte, 0, f.Size))
			if err := readPayload(fsys, c.Dir, f, buf); err != nil {
				return nil, fmt.Errorf("read checkpoint %s: %w", c.Dir, err)
			}
			return buf.Bytes(), nil
		}
	}
	return nil, fmt.Errorf("read checkpoint %s: no file %q in the manifest", c.Dir, name)
}

// Invalid is a directory of a run directory that is not a valid checkpoint: a checkpoint that
// failed verification, or the leftover of an interrupted write, replacement or deletion.
type Invalid struct {
	Dir    string
	Reason string // why, for a checkpoint_invalid event; says so if removing it failed
}

// Latest returns the newest valid checkpoint, verifying the checkpoints newest-first until one
// verifies (older ones are not read). The directories it skipped and the leftovers of
// interrupted operations are returned as Invalid. If a valid checkpoint was found, the leftovers
// and the checkpoints proven invalid (not those that could not be read) are removed; if none
// was, nothing is removed and the error wraps ErrNoCheckpoint. Before that, a checkpoint set
// aside by a replacement interrupted between its two renames is renamed back to its name.
func (s *Store) Latest() (*Checkpoint, []Invalid, error) {
	return s.newest(math.MaxInt64, "latest checkpoint")
}

// Before is Latest among the checkpoints of steps below step: for a caller that cannot use the
// checkpoint of step although it verifies (its payload does not load), the newest valid one
// before it. It reports and removes as Latest does; the checkpoint of step and newer ones are
// neither read nor removed.
func (s *Store) Before(step int64) (*Checkpoint, []Invalid, error) {
	return s.newest(step, fmt.Sprintf("checkpoint before step %d", step))
}

// newest is Latest among the checkpoints of steps below limit; what names the search in errors.
func (s *Store) newest(limit int64, what string) (*Checkpoint, []Invalid, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, fmt.Errorf("%s in %s: store is closed", what, s.dir)
	}
	sc, err := scan(s.fs, s.dir, s.pending)
	if err != nil {
		return nil, nil, fmt.Errorf("%s in %s: %w", what, s.dir, err)
	}
	if err := s.restore(&sc); err != nil {
		return nil, nil, fmt.Errorf("%s in %s: %w", what, s.dir, err)
	}
	var (
		found   *Checkpoint
		invalid []Invalid
		proven  []bool // per checkpoint in invalid
	)
	for i := len(sc.ckpts) - 1; i >= 0 && found == nil; i-- {
		if sc.ckpts[i].step >= limit {
			continue
		}
		c, err := verify(s.fs, sc.ckpts[i].dir, sc.ckpts[i].step)
		if err != nil {
			var ie *invalidError
			invalid = append(invalid, Invalid{Dir: sc.ckpts[i].dir, Reason: err.Error()})
			proven = append(proven, errors.As(err, &ie))
			continue
		}
		found = c
	}
	if found == nil {
		return nil, append(invalid, sc.leftovers...), fmt.Errorf("%s in %s: %w", what, s.dir, ErrNoCheckpoint)
	}
	for i := range invalid {
		if proven[i] {
			if err := s.remove([]string{invalid[i].Dir}); err != nil {
				invalid[i].Reason += fmt.Sprintf(" (not removed: %v)", err)
			}
		}
	}
	for i := range sc.leftovers {
		if err := s.fs.RemoveAll(sc.leftovers[i].Dir); err != nil {
			sc.leftovers[i].Reason += fmt.Sprintf(" (not removed: %v)", err)
		}
	}
	return found, append(invalid, sc.leftovers...), nil
}

// restore renames back each checkpoint set aside by an interrupted replacement whose step has no
// directory; the others become leftovers.
func (s *Store) restore(sc *scanned) error {
	restored := false
	for _, p := range sc.parked {
		if sc.has[p.step] {
			sc.leftovers = append(sc.leftovers, Invalid{Dir: p.dir, Reason: "replaced copy of " + DirName(p.step) + " left by an interrupted replacement"})
			continue
		}
		final := filepath.Join(s.dir, DirName(p.step))
		if err := s.fs.Rename(p.dir, final); err != nil {
			return err
		}
		sc.add(stepDir{dir: final, step: p.step})
		restored = true
	}
	if !restored {
		return nil
	}
	sort.Slice(sc.ckpts, func(i, j int) bool { return sc.ckpts[i].step < sc.ckpts[j].step })
	return s.fs.SyncDir(s.dir)
}

// List verifies every checkpoint of runDir, without a lock and without changing anything. It
// returns the valid ones by increasing step, and as Invalid the others and every leftover of an
// interrupted operation.
func List(runDir string) ([]Checkpoint, []Invalid, error) {
	sc, err := scan(OSFS{}, runDir, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("list checkpoints in %s: %w", runDir, err)
	}
	var (
		valid   []Checkpoint
		invalid []Invalid
	)
	for _, c := range sc.ckpts {
		ck, err := verify(OSFS{}, c.dir, c.step)
		if err != nil {
			invalid = append(invalid, Invalid{Dir: c.dir, Reason: err.Error()})
			continue
		}
		valid = append(valid, *ck)
	}
	for _, p := range sc.parked {
		reason := "replaced copy of " + DirName(p.step) + " left by an interrupted replacement"
		if !sc.has[p.step] {
			reason = "copy of " + DirName(p.step) + " set aside by an interrupted replacement (Latest renames it back)"
		}
		invalid = append(invalid, Invalid{Dir: p.dir, Reason: reason})
	}
	return valid, append(invalid, sc.leftovers...), nil
}

// Load verifies the one checkpoint directory dir, whose name must be step-NNNNNNNN.
func Load(dir string) (*Checkpoint, error) {
	dir = filepath.Clean(dir)
	step, ok := parseDirName(filepath.Base(dir))
	if !ok {
		return nil, fmt.Errorf("load checkpoint %s: the directory name is not step-NNNNNNNN", dir)
	}
	c, err := verify(OSFS{}, dir, step)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	return c, nil
}

type stepDir struct {
	dir  string
	step int64
}

// scanned classifies the entries of a run directory.
type scanned struct {
	ckpts     []stepDir // step-NNNNNNNN, by increasing step
	has       map[int64]bool
	parked    []stepDir // .old-step-NNNNNNNN-*: set aside by a replacement
	leftovers []Invalid // .tmp-* and .del-*
}

func (sc *scanned) add(c stepDir) {
	sc.ckpts = append(sc.ckpts, c)
	sc.has[c.step] = true
}

// scan lists runDir; the temporary directories in skip (live Pendings) are left out.
func scan(fsys FS, runDir string, skip map[string]bool) (scanned, error) {
	entries, err := fsys.ReadDir(runDir)
	if err != nil {
		return scanned{}, err
	}
	sc := scanned{has: map[int64]bool{}}
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(runDir, name)
		if step, ok := parseDirName(name); ok {
			sc.add(stepDir{dir: path, step: step})
			continue
		}
		switch {
		case skip[path]:
		case strings.HasPrefix(name, tmpPrefix):
			sc.leftovers = append(sc.leftovers, Invalid{Dir: path, Reason: "unfinished checkpoint write"})
		case strings.HasPrefix(name, delPrefix):
			sc.leftovers = append(sc.leftovers, Invalid{Dir: path, Reason: "unfinished checkpoint deletion"})
		case strings.HasPrefix(name, oldPrefix):
			rest := strings.TrimPrefix(name, oldPrefix)
			if i := strings.LastIndexByte(rest, '-'); i >= 0 {
				if step, ok := parseDirName(rest[:i]); ok {
					sc.parked = append(sc.parked, stepDir{dir: path, step: step})
					continue
				}
			}
			sc.leftovers = append(sc.leftovers, Invalid{Dir: path, Reason: "unfinished checkpoint replacement"})
		}
	}
	sort.Slice(sc.ckpts, func(i, j int) bool { return sc.ckpts[i].step < sc.ckpts[j].step })
	return sc, nil
}

// verify reads the checkpoint directory dir of step fully. Its error is an *invalidError when the
// directory is proven invalid.
func verify(fsys FS, dir string, step int64) (*Checkpoint, error) {
	m, err := readManifest(fsys, dir, step)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := readPayload(fsys, dir, f, io.Discard); err != nil {
			return nil, err
		}
	}
	return &Checkpoint{Dir: dir, Manifest: m, fs: fsys}, nil
}

// readManifest reads and checks the manifest of the checkpoint directory dir of step.
func readManifest(fsys FS, dir string, step int64) (Manifest, error) {
	r, err := fsys.Open(filepath.Join(dir, ManifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, invalidf("%s is missing", ManifestName)
	}
	if err != nil {
		return Manifest{}, opError("open", ManifestName, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return Manifest{}, opError("read", ManifestName, err)
	}
	return checkManifest(data, step, "the directory name")
}

// checkManifest parses the manifest data of the checkpoint of step (named so by where, e.g. "the
// directory name"); any problem is an *invalidError.
func checkManifest(data []byte, step int64, where string) (Manifest, error) {
	if len(data) > maxManifest {
		return Manifest{}, invalidf("%s is larger than %d bytes", ManifestName, maxManifest)
	}
	m, err := ParseManifest(data)
	if err != nil {
		return Manifest{}, invalidf("%s: %v", ManifestName, err)
	}
	if m.Step != step {
		return Manifest{}, invalidf("%s says step %d, %s %d", ManifestName, m.Step, where, step)
	}
	return m, nil
}

// readPayload copies the payload file f of dir to w, checking its size and SHA-256.
func readPayload(fsys FS, dir string, f FileEntry, w io.Writer) error {
	r, err := fsys.Open(filepath.Join(dir, f.Name))
	if errors.Is(err, fs.ErrNotExist) {
		return invalidf("%s is missing", f.Name)
	}
	if err != nil {
		return opError("open", f.Name, err)
	}
	defer r.Close()
	return copyVerified(w, r, f)
}

// copyVerified copies the content of the payload file f from r to w (at most one byte more than
// f.Size) and checks its size and SHA-256: wrong content is an *invalidError.
func copyVerified(w io.Writer, r io.Reader, f FileEntry) error {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, w), io.LimitReader(r, f.Size+1))
	if err != nil {
		return opError("read", f.Name, err)
	}
	switch {
	case n > f.Size:
		return invalidf("%s is larger than the %d bytes of the manifest", f.Name, f.Size)
	case n < f.Size:
		return invalidf("%s has %d bytes, the manifest says %d", f.Name, n, f.Size)
	case hex.EncodeToString(h.Sum(nil)) != f.SHA256:
		return invalidf("%s: sha256 mismatch", f.Name)
	}
	return nil
}
