package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"spottrain/codes"
)

// LockName is the lock file of a run directory; it holds the pid of the Store holding it.
const LockName = ".lock"

// Prefixes of the names that hold partial work in a run directory.
const (
	tmpPrefix = ".tmp-" // a checkpoint being written (Begin)
	oldPrefix = ".old-" // a checkpoint being replaced by a new one of the same step
	delPrefix = ".del-" // a checkpoint being deleted
)

// Options configure a Store.
type Options struct {
	// Keep is how many of the newest checkpoints retention keeps; at least 1.
	Keep int
	// BestMetric is a key of Manifest.Metrics: the best checkpoint by it is kept as well. Empty
	// keeps no best one. Checkpoints without the metric never count as best.
	BestMetric string
	// BestMode is "min" or "max": whether the best value of BestMetric is the smallest or the
	// largest. Required with BestMetric, empty without.
	BestMode string
	// FS is the file system; nil means OSFS.
	FS FS
}

func (o Options) check() error {
	if o.Keep < 1 {
		return fmt.Errorf("keep %d: must be at least 1", o.Keep)
	}
	switch {
	case o.BestMetric == "" && o.BestMode != "":
		return fmt.Errorf("best mode %q without a best metric", o.BestMode)
	case o.BestMetric != "" && o.BestMode != "min" && o.BestMode != "max":
		return fmt.Errorf("best mode %q: want min or max", o.BestMode)
	}
	return nil
}

// Store is an open run directory: the only writer of its checkpoints until Close. Its methods are
// safe for concurrent use (a background persister may commit while the loop reads).
type Store struct {
	dir  string
	opt  Options
	fs   FS
	lock *os.File

	mu      sync.Mutex
	closed  bool
	pending map[string]bool // temporary directories of live Pendings: Latest leaves them alone
}

// Open creates runDir if needed and takes its lock: an exclusive flock on runDir/.lock, whose
// content becomes this process's pid. If another Store holds it, in this process or another, the
// error wraps ErrLocked and reads "run dir runs/x is in use by another trainer (pid 1234)". The
// lock is released by Close, or by the kernel when the process dies, so it is never stale.
func Open(runDir string, opt Options) (*Store, error) {
	if err := opt.check(); err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", runDir, err)
	}
	if opt.FS == nil {
		opt.FS = OSFS{}
	}
	if err := opt.FS.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", runDir, err)
	}
	lock, err := lockDir(runDir)
	if err != nil {
		return nil, err
	}
	return &Store{dir: runDir, opt: opt, fs: opt.FS, lock: lock, pending: map[string]bool{}}, nil
}

func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "pid unknown"
			content, _ := io.ReadAll(io.LimitReader(f, 64))
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(content))); perr == nil {
				holder = "pid " + strconv.Itoa(pid)
			}
			return nil, &lockedError{dir: dir, holder: holder}
		}
		return nil, fmt.Errorf("open checkpoint store %s: lock %s: %w", dir, path, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	if _, err := f.WriteAt(pid, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("open checkpoint store %s: %w", dir, err)
	}
	return f, nil
}

// Close releases the lock. Pending checkpoints can no longer be committed (Cleanup still works).
// Closing twice is a no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.lock.Close(); err != nil {
		return fmt.Errorf("close checkpoint store %s: %w", s.dir, err)
	}
	return nil
}

// Begin starts the checkpoint of step (>= 0) in a new temporary directory. The caller writes the
// payload files with Write, then calls Commit, and in any case Cleanup (deferred: a no-op after a
// successful Commit). A Pending is not safe for concurrent use.
func (s *Store) Begin(step int64) (*Pending, error) {
	final := filepath.Join(s.dir, DirName(step))
	if step < 0 {
		return nil, fmt.Errorf("begin checkpoint %s: negative step %d", final, step)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("begin checkpoint %s: store is closed", final)
	}
	tmp, err := s.fs.MkdirTemp(s.dir, tmpPrefix+DirName(step)+"-")
	if err != nil {
		return nil, fmt.Errorf("begin checkpoint %s: %w", final, err)
	}
	s.pending[tmp] = true
	return &Pending{s: s, step: step, tmp: tmp, final: final, names: map[string]bool{}}, nil
}

// Pending is a checkpoint being written, in a temporary directory until Commit.
type Pending struct {
	s          *Store
	step       int64
	tmp, final string
	names      map[string]bool
	files      []FileEntry

	closed    bool // no more Write or Commit: committed, failed or cleaned up
	committed bool
	removed   bool
}

// writeChunk is the largest Write call on an FS file (the crash tests slow writes down per call,
// see internal/checkpointtest).
const writeChunk = 1 << 20

// Write writes the payload file name (a plain file name: no slash, not "." or "..", not
// manifest.json, not written before) with data, hashing it, and fsyncs and closes it. On error
// the pending checkpoint is abandoned and its temporary directory removed (best effort).
func (p *Pending) Write(name string, data []byte) error {
	if err := p.write(name, data); err != nil {
		p.Cleanup() // best effort: the write error is the one that matters
		return fmt.Errorf("commit checkpoint %s: %w", p.final, err)
	}
	return nil
}

func (p *Pending) write(name string, data []byte) error {
	switch {
	case p.closed:
		return errors.New("pending checkpoint is already committed or abandoned")
	case !validName(name):
		return fmt.Errorf("invalid file name %q", name)
	case p.names[name]:
		return fmt.Errorf("file %q written twice", name)
	}
	p.names[name] = true
	sum, err := writeFile(p.s.fs, filepath.Join(p.tmp, name), data)
	if err != nil {
		return err
	}
	p.files = append(p.files, FileEntry{Name: name, Size: int64(len(data)), SHA256: sum})
	return nil
}

// writeFile creates path, writes data in chunks while another goroutine hashes it (so a large
// file costs the slower of the two, not their sum), fsyncs and closes the file, and returns the
// hex SHA-256.
func writeFile(fsys FS, path string, data []byte) (string, error) {
	name := filepath.Base(path)
	f, err := fsys.Create(path)
	if err != nil {
		return "", opError("create", name, err)
	}
	sum := make(chan [sha256.Size]byte, 1)
	go func() { sum <- sha256.Sum256(data) }()
	digest := func() string { d := <-sum; return hex.EncodeToString(d[:]) }
	for off := 0; off < len(data); off += writeChunk {
		chunk := data[off:min(off+writeChunk, len(data))]
		if _, err := f.Write(chunk); err != nil {
			f.Close()
			digest()
			return "", opError("write", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		digest()
		return "", opError("sync", name, err)
	}
	if err := f.Close(); err != nil {
		digest()
		return "", opError("close", name, err)
	}
	return digest(), nil
}

// opError is "op name: cause", without the full temporary path of an *fs.PathError.
func opError(op, name string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// Commit completes the checkpoint with m, whose Step must be the step of Begin and whose Reason
// must be one of the checkpoint reasons of package codes; it fills m.FormatVersion and m.Files, sets a zero m.Time
// to now and converts it to UTC. It writes manifest.json, fsyncs it and the directory, renames
// the directory to its final name (replacing a checkpoint of the same step) and fsyncs the run
// directory: when it returns a Checkpoint, the checkpoint is durable. Then it applies retention;
// if that fails, Commit returns both the Checkpoint and an error wrapping ErrRetention.
//
// On any other error it returns no Checkpoint, the previous checkpoints are untouched and the
// temporary directory is removed (best effort). Only if the final fsync of the run directory
// fails may the new checkpoint be in place but not known to be durable.
func (p *Pending) Commit(m Manifest) (*Checkpoint, error) {
	c, replaced, err := p.commit(m)
	if err != nil {
		p.Cleanup() // best effort, and a no-op if the directory was renamed
		return nil, fmt.Errorf("commit checkpoint %s: %w", p.final, err)
	}
	if err := p.s.prune(c.Dir, replaced); err != nil {
		return c, fmt.Errorf("checkpoint %s committed, but %w: %w", c.Dir, ErrRetention, err)
	}
	return c, nil
}

// commit publishes the checkpoint; replaced is the aside name of the checkpoint of the same step
// it replaced, to be removed.
func (p *Pending) commit(m Manifest) (c *Checkpoint, replaced string, err error) {
	if p.closed {
		return nil, "", errors.New("pending checkpoint is already committed or abandoned")
	}
	p.closed = true
	if m.Step != p.step {
		return nil, "", fmt.Errorf("manifest step %d is not the step of the checkpoint", m.Step)
	}
	if m.Reason != codes.Periodic && m.Reason != codes.Emergency && m.Reason != codes.Final && m.Reason != codes.Milestone {
		return nil, "", fmt.Errorf("unknown reason %q", m.Reason)
	}
	m.FormatVersion = FormatVersion
	m.Files = append([]FileEntry{}, p.files...)
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Name < m.Files[j].Name })
	if m.Metrics == nil {
		m.Metrics = map[string]float64{}
	}
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Time = m.Time.UTC()
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, "", fmt.Errorf("encode manifest: %w", err)
	}
	data = append(data, '\n')
	parsed, err := ParseManifest(data) // what readers will see: refuse to write what they reject
	if err != nil {
		return nil, "", fmt.Errorf("encode manifest: %w", err)
	}
	if _, err := writeFile(p.s.fs, filepath.Join(p.tmp, ManifestName), data); err != nil {
		return nil, "", err
	}
	if err := p.s.fs.SyncDir(p.tmp); err != nil {
		return nil, "", err
	}

	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "", errors.New("store is closed")
	}
	replaced, err = s.publish(p.tmp, p.final)
	if err != nil {
		return nil, "", err
	}
	delete(s.pending, p.tmp)
	p.committed = true
	if err := s.fs.SyncDir(s.dir); err != nil {
		return nil, "", err
	}
	return &Checkpoint{Dir: p.final, Manifest: parsed, fs: s.fs}, replaced, nil
}

// publish renames tmp to final. If final exists, it is renamed aside first (and put back if the
// second rename fails); the aside name is returned, to be removed once the rename is durable.
func (s *Store) publish(tmp, final string) (string, error) {
	err := s.fs.Rename(tmp, final)
	if !errors.Is(err, os.ErrExist) {
		return "", err
	}
	aside := s.sideName(oldPrefix, filepath.Base(final))
	if err := s.fs.Rename(final, aside); err != nil {
		return "", err
	}
	if err := s.fs.Rename(tmp, final); err != nil {
		if rerr := s.fs.Rename(aside, final); rerr != nil {
			return "", errors.Join(err, fmt.Errorf("put back replaced checkpoint: %w", rerr))
		}
		return "", err
	}
	return aside, nil
}

func (s *Store) sideName(prefix, name string) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%s-%016x", prefix, name, rand.Uint64()))
}

// Cleanup removes the temporary directory of a checkpoint that was not committed; after a
// successful Commit, or a previous successful Cleanup, it does nothing.
func (p *Pending) Cleanup() error {
	if p.committed || p.removed {
		return nil
	}
	p.closed = true
	p.s.mu.Lock()
	delete(p.s.pending, p.tmp)
	p.s.mu.Unlock()
	if err := p.s.fs.RemoveAll(p.tmp); err != nil {
		return fmt.Errorf("clean up checkpoint %s: %w", p.final, err)
	}
	p.removed = true
	return nil
}

// prune removes replaced (if any) and applies retention, keeping keepDir whatever its rank.
// Retention reads only manifests: a checkpoint whose manifest cannot be read or parsed is left
// to Latest, never deleted here.
func (s *Store) prune(keepDir, replaced string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if replaced != "" {
		if err := s.fs.RemoveAll(replaced); err != nil {
			errs = append(errs, err)
		}
	}
	entries, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var all []ckpt // newest first
	for _, e := range entries {
		step, ok := parseDirName(e.Name())
		if !ok {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		if m, err := readManifest(s.fs, dir, step); err == nil {
			all = append(all, ckpt{dir, m})
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].m.Step > all[j].m.Step })
	keep := retained(all, s.opt)
	keep[keepDir] = true
	var doomed []string
	for _, c := range all {
		if !keep[c.dir] {
			doomed = append(doomed, c.dir)
		}
	}
	return errors.Join(append(errs, s.remove(doomed))...)
}

// retained returns the dirs of the checkpoints that the retention of opt keeps among all (newest
// first): the newest opt.Keep, and the best by opt.BestMetric, the newest among equals.
// Checkpoints without the metric never count as best.
func retained(all []ckpt, opt Options) map[string]bool {
	keep := map[string]bool{}
	for _, c := range all[:min(opt.Keep, len(all))] {
		keep[c.dir] = true
	}
	if opt.BestMetric == "" {
		return keep
	}
	best, bestValue := "", 0.0
	for _, c := range all {
		v, ok := c.m.Metrics[opt.BestMetric]
		if !ok {
			continue
		}
		if best == "" || (opt.BestMode == "min" && v < bestValue) || (opt.BestMode == "max" && v > bestValue) {
			best, bestValue = c.dir, v
		}
	}
	if best != "" {
		keep[best] = true
	}
	return keep
}

// ckpt is a checkpoint directory whose manifest is valid (its payload not verified).
type ckpt struct {
	dir string
	m   Manifest
}

// remove deletes checkpoint directories so that a crash never leaves one half deleted under its
// real name: each is renamed to a .del- name, the run directory fsynced, then the trees removed.
func (s *Store) remove(dirs []string) error {
	var errs []error
	var trash []string
	for _, dir := range dirs {
		del := s.sideName(delPrefix, filepath.Base(dir))
		if err := s.fs.Rename(dir, del); err != nil {
			errs = append(errs, err)
			continue
		}
		trash = append(trash, del)
	}
	if len(trash) == 0 {
		return errors.Join(errs...)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return errors.Join(append(errs, err)...) // the renamed trees are left to Latest
	}
	for _, del := range trash {
		if err := s.fs.RemoveAll(del); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
