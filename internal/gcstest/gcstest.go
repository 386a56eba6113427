// Package gcstest runs github.com/fsouza/fake-gcs-server in the test's process, so that tests
// exercise gs:// URLs with the real Cloud Storage client (through gocloud.dev/blob) against a
// local server.
package gcstest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Fake is a fake GCS server over plain HTTP, on loopback unless NewAt says where.
type Fake struct {
	*fakestorage.Server
	// Host is its address, host:port: the value of STORAGE_EMULATOR_HOST that points the Cloud
	// Storage client at it.
	Host string
}

// New starts a fake GCS server with the given buckets, every request going through wrap (nil:
// none) first, to delay or fail some of them; it stops when the test ends.
func New(t testing.TB, wrap func(http.Handler) http.Handler, buckets ...string) *Fake {
	t.Helper()
	return NewAt(t, "127.0.0.1", wrap, buckets...)
}

// NewAt is New listening on a free port of the IP address ip of this machine (an interface's
// address, that other network namespaces reach the server at) instead of loopback.
func NewAt(t testing.TB, ip string, wrap func(http.Handler) http.Handler, buckets ...string) *Fake {
	t.Helper()
	// The server answers the JSON API on any host, and the XML API (the client's reads) on its
	// public host: ip matches the listener whatever its port.
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", PublicHost: ip, NoListener: true})
	if err != nil {
		t.Fatalf("start fake GCS server: %v", err)
	}
	for _, b := range buckets {
		srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	h := srv.HTTPHandler()
	if wrap != nil {
		h = wrap(h)
	}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("fake GCS server: %v", err)
	}
	ts := httptest.NewUnstartedServer(h)
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
		srv.Stop()
	})
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatalf("fake GCS server URL %q: %v", ts.URL, err)
	}
	return &Fake{Server: srv, Host: u.Host}
}

// Start is New with STORAGE_EMULATOR_HOST set for the rest of the test (t.Setenv: not in
// parallel tests; they pass Env to their subprocesses instead).
func Start(t testing.TB, wrap func(http.Handler) http.Handler, buckets ...string) *Fake {
	t.Helper()
	f := New(t, wrap, buckets...)
	t.Setenv("STORAGE_EMULATOR_HOST", f.Host)
	return f
}

// Env is the environment variable that points a subprocess's Cloud Storage client at f.
func (f *Fake) Env() string { return "STORAGE_EMULATOR_HOST=" + f.Host }
