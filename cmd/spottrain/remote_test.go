package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/events"
	"spottrain/events/eventstest"
	"spottrain/internal/gcstest"
)

// TestRemoteFreshVM is a preemption on a VM whose disk does not survive it, with checkpoints
// mirrored to GCS (the real client against an in-process fake-gcs-server): SIGTERM, emergency
// checkpoint, its upload before the exit; then a fresh VM (no run dir at all) started with the
// same command downloads it, resumes and ends with the weights of an uninterrupted run. The
// remote keeps the store's retention, and the run's event log with both incarnations.
func TestRemoteFreshVM(t *testing.T) {
	t.Parallel()
	gcs := gcstest.New(t, nil, "spot")
	const url = "gs://spot/mirror/run"
	want := baselineWeights(t, sigtermJob())
	args := append(sigtermJob(), "--set", "checkpoint.remote=gs://spot/mirror")
	env := append(writeDelayEnv(20*time.Millisecond), gcs.Env())
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")

	s1 := preempt(t, dir, env, args, 40, -1)
	evs := eventstest.Read(t, runDir)
	uploads := eventstest.Of[events.CheckpointUpload](evs)
	require.NotEmpty(t, uploads)
	assert.Equal(t, s1, uploads[len(uploads)-1].Step, "the emergency checkpoint is uploaded before the exit")
	assert.Less(t, eventstest.Index[events.CheckpointUpload](evs, -1), eventstest.Index[events.Exit](evs, 0))
	ls := spottrainEnv(t, dir, []string{gcs.Env()}, "ckpt", "verify", url)
	require.Equal(t, 0, ls.code, "stdout: %s\nstderr: %s", ls.stdout, ls.stderr)
	assert.Contains(t, ls.stdout, checkpoint.DirName(s1)+"  ok\n")
	assert.Contains(t, ls.stdout, "3 checkpoints, all valid: every file has the size and SHA-256 of its manifest (not loaded: download one to load it)\n", "checkpoint.keep=3 on the remote too")

	require.NoError(t, os.RemoveAll(runDir))
	p := startSpottrain(t, dir, env, args...)
	require.Equal(t, 0, p.wait(time.Minute), "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Contains(t, p.stdout(), "downloaded step "+itoa(s1)+" from "+url+" (")
	assert.Equal(t, s1, resumedFrom(t, p.out))
	assert.Equal(t, want, weightsOf(t, newest(t, runDir)), "final weights differ from the uninterrupted run's")

	evs = eventstest.Read(t, runDir)
	assert.Equal(t, 2, checkIncarnations(t, evs), "the log came back from the remote")
	down := eventstest.Of[events.CheckpointDownload](evs)
	require.Len(t, down, 1)
	assert.Equal(t, s1, down[0].Step)
	assert.Equal(t, url, down[0].URL)
	ls = spottrainEnv(t, dir, []string{gcs.Env()}, "ckpt", "ls", url)
	require.Equal(t, 0, ls.code, "stderr: %s", ls.stderr)
	rows := strings.Split(strings.TrimSpace(ls.stdout), "\n")
	require.Len(t, rows, 4, ls.stdout)
	assert.Regexp(t, `^178\s+6\s+\d+\s+final\s`, rows[3])
	assert.True(t, strings.HasSuffix(rows[3], "  ok"), rows[3])

	log, err := gcs.GetObject("spot", "mirror/run/events.jsonl")
	require.NoError(t, err)
	local, err := os.ReadFile(filepath.Join(runDir, events.FileName))
	require.NoError(t, err)
	assert.Equal(t, string(local), string(log.Content), "the remote log has everything, the exit event included")
}

// TestRemoteStuckUpload: the store cannot take uploads (they hang), and a notice comes. The
// trainer waits for the upload of its emergency checkpoint no longer than checkpoint.remote_grace
// after the notice, says that it gave it up, and exits 75; the remote has no checkpoint that is
// half there.
func TestRemoteStuckUpload(t *testing.T) {
	t.Parallel()
	var stuck atomic.Bool
	released := make(chan struct{})
	gcs := gcstest.New(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if stuck.Load() && strings.HasPrefix(r.URL.Path, "/upload/") {
				select {
				case <-r.Context().Done():
				case <-released:
				}
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "spot")
	t.Cleanup(func() { close(released) })
	stuck.Store(true)
	args := append(sigtermJob(), "--set", "checkpoint.remote=gs://spot/mirror", "--set", "checkpoint.remote_grace=1s")
	dir := t.TempDir()
	p := startSpottrain(t, dir, []string{gcs.Env()}, args...)
	p.readLine("step 20/", time.Minute)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
	assert.Regexp(t, regexp.MustCompile(`warning: upload of step \d+ to gs://spot/mirror/run abandoned: context deadline exceeded; the remote keeps its previous checkpoint`), p.stdout())
	evs := eventstest.Read(t, filepath.Join(dir, "run"))
	exit := eventstest.Of[events.Exit](evs)
	require.Len(t, exit, 1)
	require.NotNil(t, exit[0].SignalToExitMS)
	assert.GreaterOrEqual(t, *exit[0].SignalToExitMS, int64(1000), "it waited for the upload")
	assert.Empty(t, eventstest.Of[events.CheckpointUpload](evs))

	objs, _, err := gcs.ListObjects("spot", "", "", false)
	require.NoError(t, err)
	for _, o := range objs {
		assert.NotEqual(t, checkpoint.ManifestName, filepath.Base(o.Name), "no checkpoint was committed: %s", o.Name)
	}

	// The store is back; the disk survived: the next start uploads the emergency checkpoint the
	// last exit had to give up, and the run completes.
	stuck.Store(false)
	emergency := eventstest.Of[events.EmergencyCheckpoint](evs)[0].Step
	r := spottrainEnv(t, dir, []string{gcs.Env()}, args...)
	require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	// The checkpoint it resumed from is queued first: the first upload tried is of it, or of a
	// newer one committed before its turn came, which replaced it in the queue (Mirror uploads
	// the newest). Under load that first try may fail: local retention can delete the checkpoint
	// before its upload reads it.
	var first *int64
	var superseded []int64
	for _, e := range eventstest.Read(t, filepath.Join(dir, "run")) {
		if e.Incarnation != 2 || first != nil {
			continue
		}
		switch u := e.Payload.(type) {
		case events.CheckpointUpload:
			first, superseded = &u.Step, u.Superseded
		case events.CheckpointUploadFailed:
			first = &u.Step
		}
	}
	require.NotNil(t, first, "no upload tried")
	if *first != int64(emergency) {
		assert.Contains(t, superseded, int64(emergency), "the first upload of the new start is the checkpoint it resumed from, or one that superseded it")
	}
}

// TestRemoteFinalUploadFails: the store refuses every upload. Training goes on with a warning for
// each, but a finished run whose final checkpoint did not reach the store exits 1 saying so.
func TestRemoteFinalUploadFails(t *testing.T) {
	t.Parallel()
	gcs := gcstest.New(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/upload/") {
				http.Error(w, `{"error": {"code": 403, "message": "forbidden"}}`, http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, r)
		})
	}, "spot")
	args := append(exactJob("run", 1), "--set", "train.max_steps=7", "--set", "checkpoint.remote=gs://spot/mirror")
	dir := t.TempDir()
	r := spottrainEnv(t, dir, []string{gcs.Env()}, args...)
	assert.Equal(t, 1, r.code, "stdout: %s", r.stdout)
	assert.Contains(t, errorLine(t, r.stderr), "the final checkpoint is in the run dir but not in object storage")
	assert.Contains(t, r.stdout, "warning: checkpoint upload failed, the remote keeps its previous one: ")
	assert.Contains(t, r.stdout, "\nepoch 1 done in ", "it trained to the end")
	failed := eventstest.Of[events.CheckpointUploadFailed](eventstest.Read(t, filepath.Join(dir, "run")))
	require.NotEmpty(t, failed)
	assert.Equal(t, int64(7), failed[len(failed)-1].Step)
}

// TestRemoteErrors: a remote that cannot be used stops the trainer before it trains, with one
// line naming it, and nothing of the run dir is touched.
func TestRemoteErrors(t *testing.T) {
	t.Parallel()
	gcs := gcstest.New(t, nil, "spot")
	dir := t.TempDir()
	runDir := filepath.Join(dir, "run")
	for _, tc := range []struct{ remote, err string }{
		{"gs://missing-bucket/x", "gs://missing-bucket/x/run"},
		{"ftp://host/x", `checkpoint.remote: "ftp://host/x": unsupported scheme ftp (want gs, s3 or file)`},
		{"file://relative", `want file:///ABSOLUTE/PATH`},
	} {
		args := append(exactJob("run", 1), "--set", "checkpoint.remote="+tc.remote)
		r := spottrainEnv(t, dir, []string{gcs.Env()}, append(args, "--set", "train.max_steps=5")...)
		assert.NotEqual(t, 0, r.code, tc.remote)
		assert.Contains(t, errorLine(t, r.stderr), tc.err, tc.remote)
		assert.NotContains(t, r.stdout, "step 1/", "it did not train")
	}
	_, err := os.Stat(filepath.Join(runDir, events.FileName))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing was logged: the remote is checked before the log opens")
	r := spottrainEnv(t, dir, []string{gcs.Env()}, "ckpt", "ls", "gs://spot/nothing-here")
	assert.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, "no checkpoints in gs://spot/nothing-here\n", r.stdout)
	r = spottrainEnv(t, dir, nil, "ckpt", "verify", "gopher://x/y")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, `unsupported scheme gopher`)
	r = spottrainEnv(t, dir, nil, "ckpt", "export", "gs://spot/x")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "RUN_DIR must be a local run dir, not a URL")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
