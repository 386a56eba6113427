package preemption_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spottrain/preemption"
)

// fakeGCP mimics GCP's metadata server: instance/id, and instance/preempted, which is "FALSE"
// until preempt is called, and whose wait_for_change=true GETs hang until it changes (or until
// hangFor passes, when the real server answers with the unchanged value).
type fakeGCP struct {
	srv      *httptest.Server
	mu       sync.Mutex
	changed  chan struct{} // closed by preempt
	waiting  chan struct{} // one send per hanging GET that began
	failures atomic.Int32  // requests still to refuse with 503
	hangFor  time.Duration
}

func newFakeGCP(t *testing.T) *fakeGCP {
	f := &fakeGCP{changed: make(chan struct{}), waiting: make(chan struct{}, 16), hangFor: time.Minute}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Setenv("GCE_METADATA_HOST", f.srv.Listener.Addr().String())
	return f
}

func (f *fakeGCP) preempt() { close(f.changed) }

func (f *fakeGCP) preempted() bool {
	select {
	case <-f.changed:
		return true
	default:
		return false
	}
}

func (f *fakeGCP) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	w.Header().Set("Metadata-Flavor", "Google")
	if f.failures.Add(-1) >= 0 {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	switch r.URL.Path {
	case "/computeMetadata/v1/instance/id":
		w.Write([]byte("4242"))
	case "/computeMetadata/v1/instance/preempted":
		if r.URL.Query().Get("wait_for_change") == "true" && !f.preempted() {
			f.waiting <- struct{}{}
			select {
			case <-f.changed:
			case <-time.After(f.hangFor):
			case <-r.Context().Done():
				return
			}
		}
		value, etag := "FALSE", "e0"
		if f.preempted() {
			value, etag = "TRUE", "e1"
		}
		w.Header().Set("ETag", etag)
		w.Write([]byte(value))
	default:
		http.NotFound(w, r)
	}
}

// watch runs fn on a goroutine and returns where its result arrives.
func watch(ctx context.Context, fn func(context.Context) (preemption.CloudNotice, error)) <-chan result {
	out := make(chan result, 1)
	go func() {
		n, err := fn(ctx)
		out <- result{n, err}
	}()
	return out
}

type result struct {
	n   preemption.CloudNotice
	err error
}

func await(t *testing.T, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("the watcher did not return")
		return result{}
	}
}

func awaitSignal(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatalf("never saw %s", what)
	}
}

func TestWatchGCP(t *testing.T) {
	f := newFakeGCP(t)
	done := watch(context.Background(), preemption.WatchGCP)
	awaitSignal(t, f.waiting, "a hanging GET with wait_for_change=true")
	select {
	case r := <-done:
		t.Fatalf("returned before the preemption: %+v", r)
	default:
	}
	f.preempt()
	r := await(t, done)
	require.NoError(t, r.err)
	assert.Equal(t, preemption.CloudNotice{Cloud: "gcp", Action: "preempted"}, r.n)
	assert.Equal(t, "GCP preemption notice", r.n.String())
}

// TestWatchGCPHangingGETEnds: the server ends a hanging GET without a change (as GCP's does
// after a while); the watcher asks again and still sees the preemption.
func TestWatchGCPHangingGETEnds(t *testing.T) {
	f := newFakeGCP(t)
	f.hangFor = 50 * time.Millisecond
	done := watch(context.Background(), preemption.WatchGCP)
	for range 3 {
		awaitSignal(t, f.waiting, "another hanging GET")
	}
	f.preempt()
	assert.NoError(t, await(t, done).err)
}

// TestWatchGCPErrors: refusals (503) and an unreachable server are retried until the notice
// comes; a cancelled context ends the watch.
func TestWatchGCPErrors(t *testing.T) {
	restore := preemption.GCPRetry
	preemption.GCPRetry = 10 * time.Millisecond
	t.Cleanup(func() { preemption.GCPRetry = restore })

	f := newFakeGCP(t)
	f.failures.Store(3)
	done := watch(context.Background(), preemption.WatchGCP)
	awaitSignal(t, f.waiting, "a hanging GET after the refusals")
	f.preempt()
	assert.NoError(t, await(t, done).err)

	// Nothing listens: the watcher keeps trying until its context ends.
	t.Setenv("GCE_METADATA_HOST", closedAddr(t))
	ctx, cancel := context.WithCancel(context.Background())
	done = watch(ctx, preemption.WatchGCP)
	time.AfterFunc(100*time.Millisecond, cancel)
	assert.ErrorIs(t, await(t, done).err, context.Canceled)
}

// fakeAWS mimics AWS's IMDSv2: PUT /latest/api/token (with a TTL header) gives a token that
// GET /latest/meta-data/spot/instance-action needs; that is 404 until an action is set.
type fakeAWS struct {
	srv        *httptest.Server
	mu         sync.Mutex
	token      string
	action     string // JSON; "" = nothing scheduled
	tokens     int    // tokens handed out
	polls      int    // instance-action GETs with a valid token
	tokenFails int    // token requests still to refuse with 500
	badTTL     int    // token requests without the TTL header
}

func newFakeAWS(t *testing.T) *fakeAWS {
	f := &fakeAWS{token: "token-1"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", f.srv.URL+"/")
	return f
}

func (f *fakeAWS) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
			f.badTTL++
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		if f.tokenFails > 0 {
			f.tokenFails--
			http.Error(w, "", http.StatusInternalServerError)
			return
		}
		f.tokens++
		w.Write([]byte(f.token))
	case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/spot/instance-action":
		if r.Header.Get("X-aws-ec2-metadata-token") != f.token {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		f.polls++
		if f.action == "" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(f.action))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeAWS) set(fn func(f *fakeAWS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeAWS) get() fakeAWS {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fakeAWS{tokens: f.tokens, polls: f.polls, badTTL: f.badTTL}
}

// fastPolls makes WatchAWS poll every few milliseconds.
func fastPolls(t *testing.T) {
	restore := preemption.AWSPollInterval
	preemption.AWSPollInterval = 5 * time.Millisecond
	t.Cleanup(func() { preemption.AWSPollInterval = restore })
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWatchAWS(t *testing.T) {
	fastPolls(t)
	f := newFakeAWS(t)
	done := watch(context.Background(), preemption.WatchAWS)
	waitFor(t, "three polls that find nothing scheduled (404)", func() bool { return f.get().polls >= 3 })
	select {
	case r := <-done:
		t.Fatalf("returned with nothing scheduled: %+v", r)
	default:
	}
	f.set(func(f *fakeAWS) { f.action = `{"action": "terminate", "time": "2026-11-24T12:02:00Z"}` })
	r := await(t, done)
	require.NoError(t, r.err)
	assert.Equal(t, preemption.CloudNotice{Cloud: "aws", Action: "terminate", At: time.Date(2026, 11, 24, 12, 2, 0, 0, time.UTC)}, r.n)
	assert.Equal(t, "AWS spot interruption notice (terminate at 2026-11-24T12:02:00Z)", r.n.String())
	assert.Equal(t, 1, f.get().tokens, "one token for all the polls")
	assert.Zero(t, f.get().badTTL, "the token request names its TTL")
}

// TestWatchAWSErrors: a refused token, an expired token (401), a garbled notice and an
// unreachable server are all retried; the watch ends with its context.
func TestWatchAWSErrors(t *testing.T) {
	fastPolls(t)
	f := newFakeAWS(t)
	f.set(func(f *fakeAWS) { f.tokenFails = 2 })
	done := watch(context.Background(), preemption.WatchAWS)
	waitFor(t, "a poll after two refused tokens", func() bool { return f.get().polls >= 1 })
	f.set(func(f *fakeAWS) { f.token = "token-2" }) // the first token expired
	waitFor(t, "a new token after a 401", func() bool { return f.get().tokens >= 2 })
	f.set(func(f *fakeAWS) { f.action = `{"action": ` })
	polls := f.get().polls
	waitFor(t, "polls past a garbled notice", func() bool { return f.get().polls >= polls+3 })
	f.set(func(f *fakeAWS) { f.action = `{"action": "stop", "time": "2026-11-24T12:02:00Z"}` })
	r := await(t, done)
	require.NoError(t, r.err)
	assert.Equal(t, "stop", r.n.Action)

	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+closedAddr(t))
	ctx, cancel := context.WithCancel(context.Background())
	done = watch(ctx, preemption.WatchAWS)
	time.AfterFunc(50*time.Millisecond, cancel)
	assert.ErrorIs(t, await(t, done).err, context.Canceled)
}

func TestProbe(t *testing.T) {
	shortProbes(t)
	nowhere := closedAddr(t)

	t.Run("GCP", func(t *testing.T) {
		newFakeGCP(t)
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+nowhere)
		assert.Equal(t, "gcp", preemption.Probe(context.Background()))
	})
	t.Run("AWS", func(t *testing.T) {
		newFakeAWS(t)
		t.Setenv("GCE_METADATA_HOST", nowhere)
		assert.Equal(t, "aws", preemption.Probe(context.Background()))
	})
	t.Run("NoCloud", func(t *testing.T) {
		t.Setenv("GCE_METADATA_HOST", nowhere)
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+nowhere)
		assert.Equal(t, "none", preemption.Probe(context.Background()))
	})
	t.Run("ImpostorAndSilence", func(t *testing.T) {
		// A server that answers everything 200 without Metadata-Flavor (a captive proxy), and one
		// that never answers: neither is a cloud, and the probe gives up after its time-out.
		impostor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				w.WriteHeader(http.StatusForbidden)
			}
		}))
		t.Cleanup(impostor.Close)
		release := make(chan struct{})
		silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(silent.Close)
		t.Cleanup(func() { close(release) })
		t.Setenv("GCE_METADATA_HOST", impostor.Listener.Addr().String())
		t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", silent.URL)
		start := time.Now()
		assert.Equal(t, "none", preemption.Probe(context.Background()))
		assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "waited for the silent one")
	})
}

// TestWatchNotices: auto finds the cloud and reports its notice once; away from a cloud it
// returns without a notice; none watches nothing.
func TestWatchNotices(t *testing.T) {
	shortProbes(t)
	fastPolls(t)
	nowhere := closedAddr(t)

	f := newFakeAWS(t)
	t.Setenv("GCE_METADATA_HOST", nowhere)
	f.set(func(f *fakeAWS) { f.action = `{"action": "hibernate", "time": "2026-11-24T12:02:00Z"}` })
	var notices []preemption.CloudNotice
	var logs []string
	preemption.WatchNotices(context.Background(), "auto", func(n preemption.CloudNotice) { notices = append(notices, n) },
		func(s string) { logs = append(logs, s) }, func(s string) { t.Errorf("warning: %s", s) })
	require.Len(t, notices, 1)
	assert.Equal(t, "hibernate", notices[0].Action)
	assert.Equal(t, []string{"on AWS: watching its metadata server for a preemption notice"}, logs)

	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+nowhere)
	for _, source := range []string{"auto", "none"} {
		notices, logs = nil, nil
		preemption.WatchNotices(context.Background(), source, func(n preemption.CloudNotice) { notices = append(notices, n) },
			func(s string) { logs = append(logs, s) }, func(s string) { t.Errorf("warning: %s", s) })
		assert.Empty(t, notices, source)
		assert.Empty(t, logs, source)
	}
}

// TestWatchNoticesUnreachable: a cloud named explicitly whose metadata server is away is one
// warning, and is watched all the same; one that answers is no warning.
func TestWatchNoticesUnreachable(t *testing.T) {
	shortProbes(t)
	fastPolls(t)
	nowhere := closedAddr(t)
	t.Setenv("GCE_METADATA_HOST", nowhere)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://"+nowhere)
	for _, tc := range []struct{ source, server string }{{"gcp", "GCP's metadata server (" + nowhere + ")"}, {"aws", "AWS's metadata server (http://" + nowhere + ")"}} {
		ctx, cancel := context.WithCancel(context.Background())
		var warnings []string
		preemption.WatchNotices(ctx, tc.source, func(n preemption.CloudNotice) { t.Errorf("notice %v", n) },
			func(s string) { t.Errorf("log: %s", s) },
			func(s string) { warnings = append(warnings, s); cancel() })
		cancel()
		require.Len(t, warnings, 1, tc.source)
		assert.Equal(t, "preemption.notice is "+tc.source+", but "+tc.server+" cannot be reached: no preemption notice can come "+
			"from it until it answers; SIGTERM still stops the run with an emergency checkpoint", warnings[0])
	}

	f := newFakeGCP(t)
	f.preempt()
	var notices []preemption.CloudNotice
	preemption.WatchNotices(context.Background(), "gcp", func(n preemption.CloudNotice) { notices = append(notices, n) },
		func(s string) { t.Errorf("log: %s", s) }, func(s string) { t.Errorf("warning: %s", s) })
	assert.Len(t, notices, 1)
}

// shortProbes makes the probes of the metadata servers give up after 300 ms, for the test.
func shortProbes(t *testing.T) {
	restore := preemption.ProbeTimeout
	preemption.ProbeTimeout = 300 * time.Millisecond
	t.Cleanup(func() { preemption.ProbeTimeout = restore })
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
