package checkpoint_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
	"gocloud.dev/blob"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/internal/gcstest"
	"spottrain/internal/testutil"
)

// backend is a place a Remote can live, with a bucket handle of the test's own to look at (and
// damage) the objects under the run's prefix.
type backend struct {
	url    string
	bucket *blob.Bucket
	dir    string // file://: the directory
	shown  string // the URL in messages, when it is not url (a query is left out)
}

func (b backend) name() string {
	if b.shown != "" {
		return b.shown
	}
	return b.url
}

// backends returns a fresh gs:// remote (the real Cloud Storage client against an in-process
// fake-gcs-server), a fresh s3:// one (the AWS SDK against an in-process gofakes3) and a fresh
// file:// one.
func backends(t *testing.T) map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"gs": func(t *testing.T) backend {
			gcstest.Start(t, nil, "ckpts")
			return openBackend(t, "gs://ckpts/runs/solar", "gs://ckpts", "runs/solar/")
		},
		"s3": func(t *testing.T) backend {
			// The AWS SDK v2 against gofakes3, in memory.
			mem := s3mem.New()
			require.NoError(t, mem.CreateBucket("ckpts"))
			srv := httptest.NewServer(gofakes3.New(mem).Server())
			t.Cleanup(srv.Close)
			t.Setenv("AWS_ACCESS_KEY_ID", "test")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
			t.Setenv("AWS_CONFIG_FILE", os.DevNull)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
			q := "?region=us-east-1&use_path_style=true&endpoint=" + srv.URL
			be := openBackend(t, "s3://ckpts/runs/solar"+q, "s3://ckpts"+q, "runs/solar/")
			be.shown = "s3://ckpts/runs/solar"
			return be
		},
		"file": func(t *testing.T) backend {
			dir := filepath.Join(t.TempDir(), "mirror")
			be := openBackend(t, "file://"+dir, "file://"+dir+"?create_dir=1&metadata=skip", "")
			be.dir = dir
			return be
		},
	}
}

func openBackend(t *testing.T, url, bucketURL, prefix string) backend {
	t.Helper()
	b, err := blob.OpenBucket(context.Background(), bucketURL)
	require.NoError(t, err)
	if prefix != "" {
		b = blob.PrefixedBucket(b, prefix)
	}
	t.Cleanup(func() { b.Close() })
	return backend{url: url, bucket: b}
}

func (b backend) keys(t *testing.T) []string {
	t.Helper()
	var keys []string
	it := b.bucket.List(nil)
	for {
		obj, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		keys = append(keys, obj.Key)
	}
	sort.Strings(keys)
	return keys
}

func (b backend) write(t *testing.T, key string, data []byte) {
	t.Helper()
	require.NoError(t, b.bucket.WriteAll(context.Background(), key, data, nil))
}

func (b backend) read(t *testing.T, key string) []byte {
	t.Helper()
	data, err := b.bucket.ReadAll(context.Background(), key)
	require.NoError(t, err)
	return data
}

func openRemote(t *testing.T, url string) *checkpoint.Remote {
	t.Helper()
	r, err := checkpoint.OpenRemote(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func upload(t *testing.T, r *checkpoint.Remote, c *checkpoint.Checkpoint) int64 {
	t.Helper()
	n, err := r.Upload(context.Background(), c)
	require.NoError(t, err)
	return n
}

func remoteSteps(t *testing.T, r *checkpoint.Remote) []int64 {
	t.Helper()
	valid, _, err := r.List(context.Background())
	require.NoError(t, err)
	steps := []int64{}
	for _, c := range valid {
		steps = append(steps, c.Manifest.Step)
	}
	return steps
}

func stepKeys(step int64) []string {
	d := checkpoint.DirName(step) + "/"
	return []string{d + "manifest.json", d + "model.pt", d + "optim.pt", d + "rng.pt"}
}

func TestRemote(t *testing.T) {
	for name, newBackend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("RoundTrip", func(t *testing.T) {
				be := newBackend(t)
				s := openStore(t, t.TempDir(), checkpoint.Options{})
				r := openRemote(t, be.url)
				c100, c200 := save(t, s, 100, nil), save(t, s, 200, nil)
				var total int64
				for _, f := range payload(200) {
					total += int64(len(f.data))
				}
				require.Equal(t, total, upload(t, r, c200))
				upload(t, r, c100)
				require.Equal(t, int64(0), upload(t, r, c200), "an upload of what the remote has sends nothing")
				require.Equal(t, append(stepKeys(100), stepKeys(200)...), be.keys(t))
				require.Equal(t, []int64{100, 200}, remoteSteps(t, r))

				// A fresh VM: an empty run dir gets the newest checkpoint, verified and committed.
				fresh := t.TempDir()
				s2 := openStore(t, fresh, checkpoint.Options{})
				got, invalid, err := r.Download(ctx, s2, -1)
				require.NoError(t, err)
				require.Empty(t, invalid)
				require.Equal(t, stepDir(fresh, 200), got.Dir)
				require.Equal(t, c200.Manifest, got.Manifest)
				for _, f := range payload(200) {
					data, err := got.ReadFile(f.name)
					require.NoError(t, err)
					require.Equal(t, f.data, data)
				}
				local, err := os.ReadFile(filepath.Join(got.Dir, checkpoint.ManifestName))
				require.NoError(t, err)
				require.Equal(t, be.read(t, checkpoint.DirName(200)+"/manifest.json"), local, "the local copy has the remote manifest, byte for byte")
				latest, _, err := s2.Latest()
				require.NoError(t, err)
				require.Equal(t, int64(200), latest.Manifest.Step)

				// Nothing newer than what the run dir has: nothing is downloaded.
				_, _, err = r.Download(ctx, s2, 200)
				require.ErrorIs(t, err, checkpoint.ErrNoCheckpoint)
			})

			t.Run("Empty", func(t *testing.T) {
				be := newBackend(t)
				r := openRemote(t, be.url)
				s := openStore(t, t.TempDir(), checkpoint.Options{})
				_, invalid, err := r.Download(ctx, s, -1)
				require.ErrorIs(t, err, checkpoint.ErrNoCheckpoint)
				require.ErrorContains(t, err, be.name())
				require.Empty(t, invalid)
				_, err = r.Get(ctx, "events.jsonl")
				require.ErrorIs(t, err, checkpoint.ErrNotFound)
			})

			t.Run("Corrupt", func(t *testing.T) {
				be := newBackend(t)
				s := openStore(t, t.TempDir(), checkpoint.Options{})
				r := openRemote(t, be.url)
				upload(t, r, save(t, s, 100, nil))
				upload(t, r, save(t, s, 200, nil))
				upload(t, r, save(t, s, 300, nil))
				model := be.read(t, checkpoint.DirName(300)+"/model.pt")
				model[7] ^= 1
				be.write(t, checkpoint.DirName(300)+"/model.pt", model)
				be.write(t, checkpoint.DirName(200)+"/manifest.json", []byte(`{"format_version": 99}`))

				valid, invalid, err := r.List(ctx)
				require.NoError(t, err)
				require.Len(t, valid, 2, "List reads only manifests")
				require.Len(t, invalid, 1)
				require.Equal(t, be.name()+"/"+checkpoint.DirName(200), invalid[0].Dir)
				require.ErrorContains(t, r.Verify(ctx, valid[1]), "model.pt: sha256 mismatch")
				require.NoError(t, r.Verify(ctx, valid[0]))

				dir := t.TempDir()
				s2 := openStore(t, dir, checkpoint.Options{})
				got, invalid, err := r.Download(ctx, s2, -1)
				require.NoError(t, err)
				require.Equal(t, int64(100), got.Manifest.Step, "the newest checkpoint that verifies")
				require.Len(t, invalid, 2)
				require.Contains(t, invalid[0].Reason, "model.pt: sha256 mismatch")
				require.Contains(t, invalid[1].Reason, "unsupported format version 99")
				require.Equal(t, []string{checkpoint.DirName(100)}, entries(t, dir), "no partial download is left")
			})

			t.Run("LocalFileChanged", func(t *testing.T) {
				be := newBackend(t)
				dir := t.TempDir()
				s := openStore(t, dir, checkpoint.Options{})
				r := openRemote(t, be.url)
				upload(t, r, save(t, s, 100, nil))
				c := save(t, s, 200, nil)
				testutil.Corrupt(t, filepath.Join(c.Dir, "optim.pt"))
				_, err := r.Upload(ctx, c)
				require.ErrorContains(t, err, "local optim.pt: sha256 mismatch")
				require.Equal(t, []int64{100}, remoteSteps(t, r))
				require.NotContains(t, be.keys(t), checkpoint.DirName(200)+"/manifest.json")
				require.NotContains(t, be.keys(t), checkpoint.DirName(200)+"/optim.pt", "the bad object was never created")
			})

			t.Run("Resave", func(t *testing.T) {
				be := newBackend(t)
				s := openStore(t, t.TempDir(), checkpoint.Options{})
				r := openRemote(t, be.url)
				upload(t, r, save(t, s, 100, nil))
				again := save(t, s, 100, func(m *checkpoint.Manifest) { m.Reason = codes.Emergency; m.Loss = 0.5 })
				upload(t, r, again)
				valid, _, err := r.List(ctx)
				require.NoError(t, err)
				require.Len(t, valid, 1)
				require.Equal(t, codes.Emergency, valid[0].Manifest.Reason)
				require.NoError(t, r.Verify(ctx, valid[0]))
			})

			t.Run("Abandoned", func(t *testing.T) {
				// An upload cancelled while it streams optim.pt: the object is not created, the
				// manifest not written, and the remote's newest valid checkpoint is the older one.
				be := newBackend(t)
				uctx, cancel := context.WithCancel(ctx)
				defer cancel()
				fsys := &hookFS{FS: checkpoint.OSFS{}, onOpen: func(name string) {
					if filepath.Base(name) == "optim.pt" && strings.Contains(name, checkpoint.DirName(200)) {
						cancel()
					}
				}}
				s := openStore(t, t.TempDir(), checkpoint.Options{FS: fsys})
				r := openRemote(t, be.url)
				upload(t, r, save(t, s, 100, nil))
				_, err := r.Upload(uctx, save(t, s, 200, nil))
				require.ErrorIs(t, err, context.Canceled)
				require.Equal(t, []int64{100}, remoteSteps(t, r))
				require.NotContains(t, be.keys(t), checkpoint.DirName(200)+"/manifest.json")
				got, invalid, err := r.Download(ctx, openStore(t, t.TempDir(), checkpoint.Options{}), -1)
				require.NoError(t, err)
				require.Equal(t, int64(100), got.Manifest.Step)
				require.Len(t, invalid, 1)
				require.Contains(t, invalid[0].Reason, "manifest.json is missing (an unfinished upload)")

				// Retention removes the unfinished upload once a newer checkpoint lands.
				c300 := save(t, s, 300, nil)
				upload(t, r, c300)
				removed, err := r.Prune(ctx, checkpoint.Options{Keep: 1}, 300)
				require.NoError(t, err)
				require.ElementsMatch(t, []int64{100, 200}, removed)
				require.Equal(t, stepKeys(300), be.keys(t))
			})

			t.Run("Retention", func(t *testing.T) {
				be := newBackend(t)
				s := openStore(t, t.TempDir(), checkpoint.Options{})
				r := openRemote(t, be.url)
				metric := map[int64]float64{100: 0.3, 200: 0.1, 300: 0.2, 400: 0.4, 500: 0.5}
				for _, step := range []int64{100, 200, 300, 400, 500} {
					upload(t, r, save(t, s, step, func(m *checkpoint.Manifest) { m.Metrics = map[string]float64{"rmse": metric[step]} }))
				}
				opt := checkpoint.Options{Keep: 2, BestMetric: "rmse", BestMode: "min"}
				removed, err := r.Prune(ctx, opt, 500)
				require.NoError(t, err)
				require.ElementsMatch(t, []int64{100, 300}, removed)
				require.Equal(t, []int64{200, 400, 500}, remoteSteps(t, r), "the newest two and the best")
				require.Equal(t, append(append(stepKeys(200), stepKeys(400)...), stepKeys(500)...), be.keys(t))
				if be.dir != "" {
					require.Equal(t, []string{checkpoint.DirName(200), checkpoint.DirName(400), checkpoint.DirName(500)}, entries(t, be.dir),
						"no empty directories are left behind")
				}
				removed, err = r.Prune(ctx, checkpoint.Options{Keep: 1}, 400)
				require.NoError(t, err)
				require.ElementsMatch(t, []int64{200}, removed, "the step to keep is kept whatever its rank")
			})

			t.Run("SideFile", func(t *testing.T) {
				be := newBackend(t)
				r := openRemote(t, be.url)
				path := filepath.Join(t.TempDir(), "events.jsonl")
				require.NoError(t, os.WriteFile(path, []byte("{\"type\":\"run_start\"}\n"), 0o644))
				require.NoError(t, r.PutFile(ctx, path))
				got, err := r.Get(ctx, "events.jsonl")
				require.NoError(t, err)
				require.Equal(t, "{\"type\":\"run_start\"}\n", string(got))
				require.ErrorContains(t, r.Put(ctx, "../x", nil), `invalid file name "../x"`)
			})
		})
	}
}

func TestMirror(t *testing.T) {
	for name, newBackend := range backends(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()

			t.Run("Flush", func(t *testing.T) {
				be := newBackend(t)
				s := openStore(t, t.TempDir(), checkpoint.Options{Keep: 2})
				events := filepath.Join(t.TempDir(), "events.jsonl")
				require.NoError(t, os.WriteFile(events, []byte("log\n"), 0o644))
				var mu sync.Mutex
				var uploads []checkpoint.Upload
				m := checkpoint.NewMirror(openRemote(t, be.url), checkpoint.Options{Keep: 2}, []string{events}, func(u checkpoint.Upload) {
					mu.Lock()
					uploads = append(uploads, u)
					mu.Unlock()
				})
				defer m.Close()
				r := openRemote(t, be.url)
				for step := int64(100); step <= 300; step += 100 {
					m.Push(save(t, s, step, nil))
					require.NoError(t, m.Flush(ctx))
				}
				require.Equal(t, []int64{200, 300}, remoteSteps(t, r), "retention mirrored")
				// Pushed faster than they upload: 400 is uploaded or superseded, 500 uploaded.
				m.Push(save(t, s, 400, nil))
				m.Push(save(t, s, 500, nil))
				require.NoError(t, m.Flush(ctx))
				steps := remoteSteps(t, r)
				require.Len(t, steps, 2)
				require.Equal(t, int64(500), steps[1])
				got, err := r.Get(ctx, "events.jsonl")
				require.NoError(t, err)
				require.Equal(t, "log\n", string(got))

				mu.Lock()
				defer mu.Unlock()
				var done, superseded []int64
				for _, u := range uploads {
					require.NoError(t, u.Err)
					require.NoError(t, u.Warn)
					done = append(done, u.Step)
					superseded = append(superseded, u.Superseded...)
				}
				require.Equal(t, int64(500), done[len(done)-1], "the newest is always uploaded")
				require.ElementsMatch(t, []int64{100, 200, 300, 400, 500}, append(done, superseded...), "every push is uploaded or superseded")
			})

		})
	}
}

// TestMirrorDeadline: Flush's deadline passes while an upload to GCS is stuck in the network.
// The upload is abandoned, and the remote keeps the previous checkpoint, valid.
func TestMirrorDeadline(t *testing.T) {
	ctx := context.Background()
	var armed atomic.Bool
	entered, released := make(chan struct{}, 1), make(chan struct{})
	gcstest.Start(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if armed.Load() && strings.HasPrefix(r.URL.Path, "/upload/") {
				select {
				case entered <- struct{}{}:
				default:
				}
				select { // stuck until the client gives up, or the test ends
				case <-r.Context().Done():
				case <-released:
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "ckpts")
	t.Cleanup(func() { close(released) }) // before the server stops
	url := "gs://ckpts/runs/solar"
	s := openStore(t, t.TempDir(), checkpoint.Options{})
	var mu sync.Mutex
	var uploads []checkpoint.Upload
	m := checkpoint.NewMirror(openRemote(t, url), checkpoint.Options{Keep: 5}, nil, func(u checkpoint.Upload) {
		mu.Lock()
		uploads = append(uploads, u)
		mu.Unlock()
	})
	defer m.Close()
	m.Push(save(t, s, 100, nil))
	require.NoError(t, m.Flush(ctx))

	armed.Store(true)
	m.Push(save(t, s, 200, nil))
	fctx, cancel := context.WithCancel(ctx)
	go func() { <-entered; cancel() }()
	err := m.Flush(fctx)
	require.ErrorContains(t, err, "upload of step 200 to "+url+" abandoned")
	require.ErrorIs(t, err, context.Canceled)
	armed.Store(false)
	require.Equal(t, []int64{100}, remoteSteps(t, openRemote(t, url)))
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, uploads, 2, "Flush returns after the abandoned upload ended")
	require.ErrorIs(t, uploads[1].Err, context.Canceled)
}

func TestRemoteURL(t *testing.T) {
	for _, tc := range []struct{ url, err string }{
		{"gs://bucket/runs/a", ""},
		{"gs://bucket", ""},
		{"s3://bucket/runs/a?region=eu-west-1", ""},
		{"file:///var/spottrain/mirror", ""},
		{"gs:///runs/a", `"gs:///runs/a" has no bucket: want gs://BUCKET/PATH`},
		{"gs://bucket/runs/../a", "the path must be clean"},
		{"file://relative/dir", "want file:///ABSOLUTE/PATH"},
		{"runs/a", `"runs/a" has no scheme`},
		{"ftp://host/x", "unsupported scheme ftp (want gs, s3 or file)"},
		{"gs://b/%zz", "not a URL"},
	} {
		err := checkpoint.CheckRemoteURL(tc.url)
		if tc.err == "" {
			require.NoError(t, err, tc.url)
		} else {
			require.ErrorContains(t, err, tc.err, tc.url)
		}
	}
	_, err := checkpoint.OpenRemote(context.Background(), "ftp://host/x")
	require.ErrorContains(t, err, "open remote ftp://host/x: ")

	// Away from GCP, without credentials: one clear error, before any request.
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	_, err = checkpoint.OpenRemote(context.Background(), "gs://bucket/x")
	require.ErrorContains(t, err, "open remote gs://bucket/x: no Google Cloud credentials (on GCP, give the VM a service account")
	require.ErrorContains(t, err, "missing.json")
}

// hookFS calls onOpen before opening a file for reading.
type hookFS struct {
	checkpoint.FS
	onOpen func(name string)
}

func (h *hookFS) Open(name string) (io.ReadCloser, error) {
	h.onOpen(name)
	return h.FS.Open(name)
}
