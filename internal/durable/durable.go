// Package durable replaces files whole and durably. It is how spottrain writes every file that a
// run or a command leaves behind (a run's config.yaml and metrics.json, the analysis report, an
// exported checkpoint, a downloaded event log), and it holds the one fsync of a folder (SyncDir).
//
// Create opens a new temporary file .NAME.tmp-RANDOM in the folder of the destination NAME (the
// same file system, so the rename below never copies); the caller writes it, then Commit fsyncs
// it, closes it, renames it over the destination and fsyncs the folder. Cleanup, deferred right
// after Create, removes the temporary file of a replacement that was not committed and does
// nothing after a successful Commit (google/renameio's PendingFile); nothing is ever removed
// blindly. WriteFile does all of it in one call.
//
// # Guarantees
//
//   - Atomic: a reader of the destination sees either its old content (or no file, if it did not
//     exist) or the whole new content, never a mix or a prefix: the new content only ever appears
//     by rename(2) within one folder.
//   - Durable: when Commit or WriteFile returns nil, the new content and the folder's entry for it
//     are on stable storage: they survive a crash or a power loss from then on.
//   - Failure: when Create, Commit or WriteFile returns an error, the destination is untouched,
//     except when only the final fsync of the folder fails: then the new content is in place but
//     not known to be durable. After Cleanup no temporary file is left (best effort: Cleanup
//     reports what it could not remove).
//   - Crash: a crash (SIGKILL, power loss) at any instant leaves the destination with its old
//     content or its new content, whole, and at most one leftover .NAME.tmp-* file beside it,
//     which nothing reads and anyone may delete.
//
// # Destinations
//
// A destination must be absent, a regular file, or a symbolic link (or a chain of them) that
// ends at a regular file or at nothing. A link is written through: the link stays, and its final
// target is replaced, with the temporary file in the target's folder. Anything else (a device
// such as /dev/null, a folder, a socket, a pipe) is refused before anything is created, with an
// error that names the path. The new file gets perm less the umask, like os.WriteFile creating a
// file, also when it replaces one: the mode and owner of the old file are not kept.
//
// Two replacements of one destination at once do not corrupt it, but the last rename wins.
package durable

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
)

// maxLinks is how many symbolic links a destination may go through, as Linux's MAXSYMLINKS.
const maxLinks = 40

// Pending is a replacement in progress: a temporary file beside the destination. Write fills
// it; Commit puts it in place; Cleanup, deferred, removes it unless Commit succeeded. A Pending
// is not safe for concurrent use.
type Pending struct {
	f    *os.File
	path string // the destination as the caller named it, for messages
	dest string // the file that Commit replaces: path, or the target of the link(s) path is
	dir  string // the folder of dest
	done bool   // committed or cleaned up
}

// Create starts replacing path with a new file of mode perm (less the umask). It refuses a path
// that exists and is not a regular file, nor a link to one (see the package doc). The caller
// writes the content with Write, calls Commit, and in any case Cleanup (deferred: a no-op after
// a successful Commit).
func Create(path string, perm fs.FileMode) (*Pending, error) {
	dest, err := target(path)
	if err != nil {
		return nil, err
	}
	dir, name := split(dest)
	f, err := createTemp(dir, "."+name+".tmp-", perm)
	if err != nil {
		return nil, fmt.Errorf("replace %s: %w", path, cause(err))
	}
	return &Pending{f: f, path: path, dest: dest, dir: dir}, nil
}

// Write appends b to the new content. Its errors name the destination.
func (p *Pending) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	if err != nil {
		return n, fmt.Errorf("write %s: %w", p.path, cause(err))
	}
	return n, nil
}

// Commit fsyncs and closes the new file, renames it over the destination and fsyncs the
// destination's folder: when it returns nil, the new content is in place and durable. On an
// error before the rename the destination is untouched and Cleanup removes the new file; if only
// the fsync of the folder fails, the new content is in place but not known to be durable.
// Committing twice, or after Cleanup, is an error.
func (p *Pending) Commit() error {
	if p.done {
		return fmt.Errorf("replace %s: already committed or cleaned up", p.path)
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("replace %s: sync: %w", p.path, cause(err))
	}
	if err := p.f.Close(); err != nil {
		return fmt.Errorf("replace %s: close: %w", p.path, cause(err))
	}
	if err := os.Rename(p.f.Name(), p.dest); err != nil {
		return fmt.Errorf("replace %s: rename: %w", p.path, cause(err))
	}
	p.done = true
	if err := SyncDir(p.dir); err != nil {
		return fmt.Errorf("replace %s: %w", p.path, err)
	}
	return nil
}

// Cleanup removes the new file of a replacement that was not committed, leaving the destination
// as it was. After a successful Commit, or a previous Cleanup, it does nothing and returns nil.
func (p *Pending) Cleanup() error {
	if p.done {
		return nil
	}
	p.done = true
	p.f.Close() // a failed Commit may have closed it already
	if err := os.Remove(p.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("clean up the replacement of %s: %w", p.path, err)
	}
	return nil
}

// WriteFile replaces path with data, a new file of mode perm (less the umask): Create, Write,
// Commit and Cleanup in one call, with their guarantees.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	return WriteWith(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteWith replaces path with what write writes, as WriteFile does: nothing changes at path if
// write fails.
func WriteWith(path string, perm fs.FileMode, write func(io.Writer) error) error {
	p, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer p.Cleanup() // a no-op after Commit; else the error that matters is returned below
	if err := write(p); err != nil {
		return err
	}
	return p.Commit()
}

// SyncDir fsyncs the folder dir, making the creation, renaming and removal of its entries
// durable. Its errors are those of package os and name dir.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// target returns the file that replacing path replaces: path itself, or the final target of the
// symbolic links path goes through. It refuses a file that exists and is not regular.
func target(path string) (string, error) {
	dest := path
	for range maxLinks {
		info, err := os.Lstat(dest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return dest, nil
		case err != nil:
			return "", fmt.Errorf("replace %s: %w", path, cause(err))
		case info.Mode().IsRegular():
			return dest, nil
		case info.Mode()&fs.ModeSymlink == 0:
			return "", notRegular(path, dest, info.Mode())
		}
		link, err := os.Readlink(dest)
		if err != nil {
			return "", fmt.Errorf("replace %s: %w", path, cause(err))
		}
		if !strings.HasPrefix(link, "/") {
			// Relative to the link's folder, joined without cleaning: a ".." after a linked
			// folder is the kernel's to resolve, not a lexical one.
			dir, _ := split(dest)
			link = dir + "/" + link
		}
		dest = link
	}
	return "", fmt.Errorf("replace %s: too many levels of symbolic links", path)
}

// notRegular is the error of a destination path whose file dest (path, or the target of its
// links) is of mode m, not a regular file.
func notRegular(path, dest string, m fs.FileMode) error {
	kind := "not a regular file"
	switch {
	case m.IsDir():
		kind = "a folder"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device"
	case m&fs.ModeDevice != 0:
		kind = "a block device"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe"
	}
	if dest != path {
		return fmt.Errorf("refusing to replace %s: it links to %s, which is %s, not a regular file", path, dest, kind)
	}
	return fmt.Errorf("refusing to replace %s: it is %s, not a regular file", path, kind)
}

// split returns the folder of path and its last element, without cleaning path.
func split(path string) (dir, name string) {
	i := strings.LastIndexByte(path, '/')
	switch {
	case i < 0:
		return ".", path
	case i == 0:
		return "/", path[1:]
	}
	return path[:i], path[i+1:]
}

// createTemp creates a new file prefix+RANDOM in dir, of mode perm less the umask.
func createTemp(dir, prefix string, perm fs.FileMode) (f *os.File, err error) {
	for range 100 { // a name taken 100 times is no coincidence: report it
		f, err = os.OpenFile(fmt.Sprintf("%s/%s%016x", dir, prefix, rand.Uint64()), os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
	}
	return f, err
}

// cause is the error inside an *fs.PathError or *os.LinkError (whose message names a temporary
// file or repeats the path), or err itself.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
