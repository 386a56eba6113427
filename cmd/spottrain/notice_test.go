package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/checkpoint"
	"spottrain/codes"
	"spottrain/events"
	"spottrain/events/eventstest"
)

// TestCloudNotice: a preemption notice from a cloud's metadata server (a fake on loopback) takes
// the path of SIGTERM. GCP is watched as configured, and preempts once training is under way: the
// step finishes, an emergency checkpoint is written, the trainer exits 75, and the same command
// resumes from there. AWS is found by the auto probe, and its notice is there at the first poll,
// before the first step: the trainer exits 75 at once with nothing to save.
func TestCloudNotice(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cloud, source, says string
		early               bool // the notice is up before the trainer starts
		env                 func(srv *httptest.Server) []string
		serve               func(armed *atomic.Bool) http.HandlerFunc
	}{
		{
			cloud: "gcp", source: "gcp", says: "GCP preemption notice",
			env: func(srv *httptest.Server) []string {
				return []string{"GCE_METADATA_HOST=" + srv.Listener.Addr().String()}
			},
			serve: func(armed *atomic.Bool) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Metadata-Flavor", "Google")
					if r.URL.Query().Get("wait_for_change") == "true" {
						for !armed.Load() && r.Context().Err() == nil {
							time.Sleep(5 * time.Millisecond)
						}
					}
					if armed.Load() {
						w.Header().Set("ETag", "e1")
						w.Write([]byte("TRUE"))
						return
					}
					w.Header().Set("ETag", "e0")
					w.Write([]byte("FALSE"))
				}
			},
		},
		{
			cloud: "aws", source: "auto", says: "AWS spot interruption notice (terminate at 2026-11-24T12:02:00Z)", early: true,
			env: func(srv *httptest.Server) []string {
				return []string{"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + srv.URL, "GCE_METADATA_HOST=127.0.0.1:1"}
			},
			serve: func(armed *atomic.Bool) http.HandlerFunc {
				return func(w http.ResponseWriter, r *http.Request) {
					switch {
					case r.Method == http.MethodPut:
						w.Write([]byte("token"))
					case r.Header.Get("X-aws-ec2-metadata-token") != "token":
						w.WriteHeader(http.StatusUnauthorized)
					case !armed.Load():
						http.NotFound(w, r)
					default:
						w.Write([]byte(`{"action": "terminate", "time": "2026-11-24T12:02:00Z"}`))
					}
				}
			},
		},
	} {
		t.Run(tc.cloud, func(t *testing.T) {
			t.Parallel()
			var armed atomic.Bool
			armed.Store(tc.early)
			srv := httptest.NewServer(tc.serve(&armed))
			t.Cleanup(srv.Close)
			dir := t.TempDir()
			runDir := filepath.Join(dir, "run")
			args := append(lstmTrain(), tiny(runDir)...)
			args = append(args, "--set", "train.epochs=40", "--set", "preemption.notice="+tc.source)

			p := startSpottrain(t, dir, tc.env(srv), args...)
			if !tc.early {
				p.readLine("step ", time.Minute)
				armed.Store(true)
			}
			require.Equal(t, codes.ExitPreempted, p.wait(time.Minute), "stdout:\n%s\nstderr: %s", p.tail(10), p.stderr.String())
			if tc.source == "auto" {
				assert.Contains(t, p.stdout(), "on AWS: watching its metadata server for a preemption notice\n")
			}
			if tc.early {
				// Up before the first step: the trainer stops at once, with nothing to save, and
				// the next start begins afresh.
				assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(tc.says)+` received during \w+: stopping, with nothing new to save$`, p.stdout())
				assert.NoDirExists(t, filepath.Join(runDir, checkpoint.DirName(1)))
				srv.Close()
				r := spottrain(t, dir, append(args, "--set", "preemption.notice=none")...)
				require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
				assert.NotContains(t, r.stdout, "resumed from step ")
				return
			}
			assert.Contains(t, p.stdout(), tc.says+" received: checkpointing at step ")
			evs := eventstest.Read(t, runDir)
			got := eventstest.Of[events.SignalReceived](evs)
			require.Len(t, got, 1)
			assert.Equal(t, tc.says, got[0].Signal)
			require.Len(t, eventstest.Of[events.EmergencyCheckpoint](evs), 1)
			step := eventstest.Of[events.EmergencyCheckpoint](evs)[0].Step

			// Started again (the metadata server still says preempted: a new VM would not), it
			// resumes from the emergency checkpoint and completes.
			srv.Close()
			r := spottrain(t, dir, append(args, "--set", "preemption.notice=none")...)
			require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.True(t, strings.Contains(r.stdout, "resumed from step "), r.stdout)
			assert.Equal(t, step, eventstest.Of[events.Resume](eventstest.Read(t, runDir))[0].Step)
		})
	}
}

// TestCloudNoticeUnreachable: a trainer told to watch a cloud whose metadata server is away says
// so once, on stderr, and trains to the end all the same.
func TestCloudNoticeUnreachable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ source, env, server string }{
		{"gcp", "GCE_METADATA_HOST=127.0.0.1:1", "GCP's metadata server (127.0.0.1:1)"},
		{"aws", "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1", "AWS's metadata server (http://127.0.0.1:1)"},
	} {
		t.Run(tc.source, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append(lstmTrain(), tiny("run")...)
			args = append(args, "--set", "train.epochs=2", "--set", "preemption.notice="+tc.source)
			r := spottrainEnv(t, dir, []string{tc.env}, args...)
			require.Equal(t, 0, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Equal(t, "spottrain: warning: preemption.notice is "+tc.source+", but "+tc.server+" cannot be reached: "+
				"no preemption notice can come from it until it answers; SIGTERM still stops the run with an emergency checkpoint\n", r.stderr)
			assert.Contains(t, r.stdout, "skill = 1 - RMSE/RMSE_baseline")
		})
	}
}
