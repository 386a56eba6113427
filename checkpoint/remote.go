package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gocloud.dev/blob"
	_ "gocloud.dev/blob/fileblob" // file://
	_ "gocloud.dev/blob/gcsblob"  // gs://
	_ "gocloud.dev/blob/s3blob"   // s3://
	"gocloud.dev/gcerrors"
	"golang.org/x/oauth2/google"
)

// gcsScope is the OAuth scope of the credentials gs:// needs.
const gcsScope = "https://www.googleapis.com/auth/devstorage.read_write"

// remoteLocation is a parsed remote URL: the bucket to open and the key prefix of the run in it.
type remoteLocation struct {
	bucketURL string // for blob.OpenBucket
	prefix    string // "" or ending in "/"
	dir       string // file://: the directory
}

// parseRemote checks a remote URL and splits it into bucket and prefix: gs://BUCKET[/PATH] and
// s3://BUCKET[/PATH][?QUERY] (QUERY goes to the driver: region, endpoint, ...) keep the run under
// PATH in the bucket; file:///ABS/PATH keeps it in a directory, created if needed.
func parseRemote(raw string) (remoteLocation, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return remoteLocation{}, fmt.Errorf("not a URL: %v", err)
	}
	switch u.Scheme {
	case "gs", "s3":
		if u.Host == "" {
			return remoteLocation{}, fmt.Errorf("%q has no bucket: want %s://BUCKET/PATH", raw, u.Scheme)
		}
		if u.User != nil || u.Fragment != "" {
			return remoteLocation{}, fmt.Errorf("%q: want %s://BUCKET/PATH", raw, u.Scheme)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" && (prefix != path.Clean(prefix) || prefix == ".") {
			return remoteLocation{}, fmt.Errorf("%q: the path must be clean (no . or .. or empty parts)", raw)
		}
		if prefix != "" {
			prefix += "/"
		}
		bucket := url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}
		return remoteLocation{bucketURL: bucket.String(), prefix: prefix}, nil
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return remoteLocation{}, fmt.Errorf("%q: want file:///ABSOLUTE/PATH", raw)
		}
		q := u.Query()
		for k, v := range map[string]string{"create_dir": "1", "no_tmp_dir": "1", "metadata": "skip"} {
			if !q.Has(k) {
				q.Set(k, v)
			}
		}
		dir := url.URL{Scheme: "file", Path: filepath.Clean(u.Path), RawQuery: q.Encode()}
		return remoteLocation{bucketURL: dir.String(), dir: dir.Path}, nil
	case "":
		return remoteLocation{}, fmt.Errorf("%q has no scheme: want gs://, s3:// or file:///", raw)
	default:
		return remoteLocation{}, fmt.Errorf("%q: unsupported scheme %s (want gs, s3 or file)", raw, u.Scheme)
	}
}

// CheckRemoteURL reports whether raw is a remote URL that OpenRemote accepts, without opening it.
func CheckRemoteURL(raw string) error {
	_, err := parseRemote(raw)
	return err
}

// Remote is a run directory's copy in object storage: the same step-NNNNNNNN/ prefixes with the
// same files, manifest.json written last. An object store has no rename, so the manifest is the
// commit marker there: a prefix is a checkpoint only once its manifest exists, and Upload writes
// it only after every payload object is complete and verified. Each object is written whole or
// not at all (a cancelled write leaves nothing), so a crash or a cancel at any instant leaves
// every checkpoint uploaded before it valid. Readers trust nothing: Download verifies the manifest
// and every file's size and SHA-256 before committing a local copy.
//
// A Remote has one writer at a time: two trainers of one run must not share it. Its methods are
// safe for concurrent use.
type Remote struct {
	url    string
	bucket *blob.Bucket
	dir    string // file://: the directory, whose emptied step directories Prune removes
}

// OpenRemote opens the remote copy of a run at rawURL (see CheckRemoteURL): gs:// with Google's
// application default credentials (or the emulator at STORAGE_EMULATOR_HOST), s3:// with the AWS
// SDK's default chain, file:// a directory. It reads nothing yet: an unreachable bucket is an
// error of the first operation.
func OpenRemote(ctx context.Context, rawURL string) (*Remote, error) {
	loc, err := parseRemote(rawURL)
	if err != nil {
		return nil, fmt.Errorf("open remote %s: %w", rawURL, err)
	}
	if strings.HasPrefix(loc.bucketURL, "gs:") && os.Getenv("STORAGE_EMULATOR_HOST") == "" {
		// Checked here for a clear error: the driver would print a warning and fail later.
		if _, err := google.FindDefaultCredentials(ctx, gcsScope); err != nil {
			return nil, fmt.Errorf("open remote %s: no Google Cloud credentials (on GCP, give the VM a service account "+
				"that may write the bucket; elsewhere set GOOGLE_APPLICATION_CREDENTIALS or run "+
				"'gcloud auth application-default login'): %w", rawURL, err)
		}
	}
	b, err := blob.OpenBucket(ctx, loc.bucketURL)
	if err != nil {
		return nil, fmt.Errorf("open remote %s: %w", rawURL, err)
	}
	if loc.prefix != "" {
		b = blob.PrefixedBucket(b, loc.prefix)
	}
	base, _, _ := strings.Cut(rawURL, "?")
	return &Remote{url: strings.TrimSuffix(base, "/"), bucket: b, dir: loc.dir}, nil
}

// URL is the URL the Remote was opened with, without its query and a trailing slash.
func (r *Remote) URL() string { return r.url }

// Close releases the bucket.
func (r *Remote) Close() error { return r.bucket.Close() }

// RemoteCheckpoint is a checkpoint of a Remote whose manifest is valid; its payload is verified
// only by Download and Verify.
type RemoteCheckpoint struct {
	URL      string // the checkpoint's prefix, e.g. gs://bucket/run/step-00000100
	Manifest Manifest
}

// List returns the remote checkpoints with a valid manifest by increasing step, and as Invalid
// the step prefixes without one (an upload interrupted before its manifest) or with a manifest
// that does not parse. It reads only manifests.
func (r *Remote) List(ctx context.Context) ([]RemoteCheckpoint, []Invalid, error) {
	steps, err := r.steps(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", r.url, err)
	}
	var (
		valid   []RemoteCheckpoint
		invalid []Invalid
	)
	for _, step := range steps {
		m, err := r.manifest(ctx, step)
		var ie *invalidError
		switch {
		case errors.As(err, &ie):
			invalid = append(invalid, Invalid{Dir: r.stepURL(step), Reason: err.Error()})
		case err != nil:
			return nil, nil, fmt.Errorf("list %s: %w", r.url, err)
		default:
			valid = append(valid, RemoteCheckpoint{URL: r.stepURL(step), Manifest: m})
		}
	}
	return valid, invalid, nil
}

// Verify reads every payload object of c and checks its size and SHA-256 against the manifest.
// Its error says what is wrong.
func (r *Remote) Verify(ctx context.Context, c RemoteCheckpoint) error {
	for _, f := range c.Manifest.Files {
		if err := r.readObject(ctx, c.Manifest.Step, f, io.Discard); err != nil {
			return err
		}
	}
	return nil
}

// steps lists the step prefixes of the remote, by increasing step.
func (r *Remote) steps(ctx context.Context) ([]int64, error) {
	it := r.bucket.List(&blob.ListOptions{Delimiter: "/"})
	var steps []int64
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !obj.IsDir {
			continue
		}
		if step, ok := parseDirName(strings.TrimSuffix(obj.Key, "/")); ok {
			steps = append(steps, step)
		}
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i] < steps[j] })
	return steps, nil
}

func (r *Remote) stepURL(step int64) string { return r.url + "/" + DirName(step) }

func key(step int64, name string) string { return DirName(step) + "/" + name }

// manifest reads and checks the manifest of step; the error is an *invalidError when it is
// missing or wrong, anything else when it could not be read.
func (r *Remote) manifest(ctx context.Context, step int64) (Manifest, error) {
	data, err := r.readLimited(ctx, key(step, ManifestName), maxManifest)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return Manifest{}, invalidf("%s is missing (an unfinished upload)", ManifestName)
	}
	if err != nil {
		return Manifest{}, err
	}
	return checkManifest(data, step, "the prefix")
}

// readLimited reads at most limit+1 bytes of the object k.
func (r *Remote) readLimited(ctx context.Context, k string, limit int64) ([]byte, error) {
	rd, err := r.bucket.NewReader(ctx, k, nil)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, limit+1))
}

// readObject copies the payload object f of step to w, checking its size and SHA-256; a wrong
// or missing object is an *invalidError.
func (r *Remote) readObject(ctx context.Context, step int64, f FileEntry, w io.Writer) error {
	rd, err := r.bucket.NewReader(ctx, key(step, f.Name), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return invalidf("%s is missing", f.Name)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer rd.Close()
	return copyVerified(w, rd, f)
}

// Download copies the newest remote checkpoint with a step above after (-1: any) into the store
// s, verifying it on the way, and returns the local checkpoint, committed like any other (so a
// crash during a download leaves only a temporary directory). Remote checkpoints that fail
// verification are skipped, newest first, and returned as Invalid; the remote is not changed.
// With nothing to download the error wraps ErrNoCheckpoint.
func (r *Remote) Download(ctx context.Context, s *Store, after int64) (*Checkpoint, []Invalid, error) {
	steps, err := r.steps(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("download from %s: %w", r.url, err)
	}
	var invalid []Invalid
	for i := len(steps) - 1; i >= 0 && steps[i] > after; i-- {
		c, err := r.download(ctx, s, steps[i])
		var ie *invalidError
		if errors.As(err, &ie) {
			invalid = append(invalid, Invalid{Dir: r.stepURL(steps[i]), Reason: err.Error()})
			continue
		}
		if err != nil {
			return nil, invalid, fmt.Errorf("download %s: %w", r.stepURL(steps[i]), err)
		}
		return c, invalid, nil
	}
	return nil, invalid, fmt.Errorf("download from %s: %w", r.url, ErrNoCheckpoint)
}

func (r *Remote) download(ctx context.Context, s *Store, step int64) (*Checkpoint, error) {
	m, err := r.manifest(ctx, step)
	if err != nil {
		return nil, err
	}
	p, err := s.Begin(step)
	if err != nil {
		return nil, err
	}
	defer p.Cleanup()
	for _, f := range m.Files {
		buf := bytes.NewBuffer(make([]byte, 0, f.Size))
		if err := r.readObject(ctx, step, f, buf); err != nil {
			return nil, err
		}
		if err := p.Write(f.Name, buf.Bytes()); err != nil {
			return nil, err
		}
	}
	c, err := p.Commit(m)
	if errors.Is(err, ErrRetention) {
		err = nil // the download is durable; what was not pruned is pruned later
	}
	return c, err
}

// Upload copies the local checkpoint c: every payload file, each checked against the manifest
// while it streams (a local file that changed since its commit is not uploaded), then the
// manifest. If the remote holds another manifest for the step (a step saved again), that manifest
// is deleted first, so the step is never valid with a mix of old and new files. An upload of a
// step whose remote manifest is byte for byte the local one does nothing and returns 0. It
// returns the payload bytes uploaded. Cancelling ctx abandons the upload: the object being
// written is discarded and the manifest not written, so the remote stays valid.
func (r *Remote) Upload(ctx context.Context, c *Checkpoint) (int64, error) {
	step := c.Manifest.Step
	fsys := c.fs
	if fsys == nil {
		fsys = OSFS{}
	}
	local, err := readAll(fsys, filepath.Join(c.Dir, ManifestName), maxManifest)
	if err != nil {
		return 0, fmt.Errorf("upload %s: %w", c.Dir, err)
	}
	remote, err := r.readLimited(ctx, key(step, ManifestName), maxManifest)
	switch {
	case err == nil && bytes.Equal(remote, local):
		return 0, nil
	case err == nil:
		if err := r.bucket.Delete(ctx, key(step, ManifestName)); err != nil {
			return 0, fmt.Errorf("upload %s: replace %s: %w", c.Dir, r.stepURL(step), err)
		}
	case gcerrors.Code(err) != gcerrors.NotFound:
		return 0, fmt.Errorf("upload %s to %s: %w", c.Dir, r.url, err)
	}
	var total int64
	for _, f := range c.Manifest.Files {
		if err := r.uploadFile(ctx, fsys, c.Dir, step, f); err != nil {
			return total, fmt.Errorf("upload %s to %s: %w", c.Dir, r.url, err)
		}
		total += f.Size
	}
	opts := &blob.WriterOptions{ContentType: "application/json"}
	if err := r.bucket.WriteAll(ctx, key(step, ManifestName), local, opts); err != nil {
		return total, fmt.Errorf("upload %s to %s: %s: %w", c.Dir, r.url, ManifestName, err)
	}
	return total, nil
}

// uploadFile streams the payload file f of dir to its object, hashing it; the object is
// committed only if the file still has the manifest's size and SHA-256.
func (r *Remote) uploadFile(ctx context.Context, fsys FS, dir string, step int64, f FileEntry) error {
	in, err := fsys.Open(filepath.Join(dir, f.Name))
	if err != nil {
		return opError("open", f.Name, err)
	}
	defer in.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := r.bucket.NewWriter(wctx, key(step, f.Name), &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(in, f.Size+1))
	switch {
	case err != nil:
	case n != f.Size:
		err = fmt.Errorf("local %s has %d bytes, the manifest says %d", f.Name, n, f.Size)
	case hex.EncodeToString(h.Sum(nil)) != f.SHA256:
		err = fmt.Errorf("local %s: sha256 mismatch", f.Name)
	}
	if err != nil {
		cancel() // before Close: the write is abandoned, no object is created
		w.Close()
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", f.Name, err)
	}
	return nil
}

// Prune applies the retention of opt (Options.Keep, Options.BestMetric) to the remote
// checkpoints, always keeping the step keep: each doomed checkpoint loses its manifest first (it
// stops being a checkpoint at once), then its other objects. Prefixes without a valid manifest
// below the newest valid checkpoint (uploads that never finished) are removed too. It returns
// the steps it removed.
func (r *Remote) Prune(ctx context.Context, opt Options, keep int64) ([]int64, error) {
	valid, invalid, err := r.List(ctx)
	if err != nil {
		return nil, err
	}
	all := make([]ckpt, 0, len(valid)) // newest first
	for i := len(valid) - 1; i >= 0; i-- {
		all = append(all, ckpt{dir: DirName(valid[i].Manifest.Step), m: valid[i].Manifest})
	}
	kept := retained(all, opt)
	kept[DirName(keep)] = true
	var doomed []int64
	for _, c := range all {
		if !kept[c.dir] {
			doomed = append(doomed, c.m.Step)
		}
	}
	if len(all) > 0 {
		for _, inv := range invalid {
			step, _ := parseDirName(path.Base(inv.Dir))
			if step < all[0].m.Step && !kept[DirName(step)] {
				doomed = append(doomed, step)
			}
		}
	}
	var removed []int64
	var errs []error
	for _, step := range doomed {
		if err := r.removeStep(ctx, step); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", r.stepURL(step), err))
			continue
		}
		removed = append(removed, step)
	}
	return removed, errors.Join(errs...)
}

// removeStep deletes the manifest of step, then every other object under its prefix.
func (r *Remote) removeStep(ctx context.Context, step int64) error {
	if err := r.bucket.Delete(ctx, key(step, ManifestName)); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
		return err
	}
	it := r.bucket.List(&blob.ListOptions{Prefix: DirName(step) + "/"})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := r.bucket.Delete(ctx, obj.Key); err != nil && gcerrors.Code(err) != gcerrors.NotFound {
			return err
		}
	}
	if r.dir != "" {
		os.Remove(filepath.Join(r.dir, DirName(step))) // an object store has no directories to remove
	}
	return nil
}

// Put writes the side file name (a plain file name, such as events.jsonl) beside the
// checkpoints, replacing it whole.
func (r *Remote) Put(ctx context.Context, name string, data []byte) error {
	if !validName(name) {
		return fmt.Errorf("put %s: invalid file name %q", r.url, name)
	}
	if err := r.bucket.WriteAll(ctx, name, data, &blob.WriterOptions{ContentType: "application/octet-stream"}); err != nil {
		return fmt.Errorf("put %s/%s: %w", r.url, name, err)
	}
	return nil
}

// PutFile uploads the local file at path with Put, under its base name.
func (r *Remote) PutFile(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("put %s: %w", r.url, err)
	}
	return r.Put(ctx, filepath.Base(path), data)
}

// Get reads the side file name; a missing one is an error matching ErrNotFound.
func (r *Remote) Get(ctx context.Context, name string) ([]byte, error) {
	if !validName(name) {
		return nil, fmt.Errorf("get %s: invalid file name %q", r.url, name)
	}
	data, err := r.bucket.ReadAll(ctx, name)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("get %s/%s: %w", r.url, name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w", r.url, name, err)
	}
	return data, nil
}

// readAll reads a whole local file of at most limit bytes.
func readAll(fsys FS, name string, limit int64) ([]byte, error) {
	r, err := fsys.Open(name)
	if err != nil {
		return nil, opError("open", filepath.Base(name), err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, opError("read", filepath.Base(name), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", filepath.Base(name), limit)
	}
	return data, nil
}
