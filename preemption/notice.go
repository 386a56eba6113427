package preemption

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"
)

// Where a trainer looks for a preemption notice besides its signals (the config's
// preemption.notice).
const (
	NoticeAuto = "auto" // probe both clouds' metadata servers in the background, watch the one that answers
	NoticeGCP  = "gcp"  // GCP's metadata server: instance/preempted
	NoticeAWS  = "aws"  // AWS's instance metadata (IMDSv2): spot/instance-action
	NoticeNone = "none" // signals only
)

// NoticeSources are the values of preemption.notice.
var NoticeSources = []string{NoticeAuto, NoticeGCP, NoticeAWS, NoticeNone}

// CloudNotice is a preemption notice read from a cloud's metadata server. It is an os.Signal, so
// a trainer handles it exactly like the SIGTERM that usually follows it: it finishes the step,
// writes an emergency checkpoint and exits 75.
type CloudNotice struct {
	Cloud  string    // "gcp" or "aws"
	Action string    // aws: "terminate", "stop" or "hibernate"; gcp: "preempted"
	At     time.Time // aws: when the action is scheduled; zero for gcp (about 30 s after the notice)
}

// String describes the notice, e.g. "GCP preemption notice" or "AWS spot interruption notice
// (terminate at 2026-11-24T12:02:00Z)".
func (n CloudNotice) String() string {
	if n.Cloud == NoticeAWS {
		return fmt.Sprintf("AWS spot interruption notice (%s at %s)", n.Action, n.At.UTC().Format(time.RFC3339))
	}
	return strings.ToUpper(n.Cloud) + " preemption notice"
}

// Signal makes a CloudNotice an os.Signal.
func (CloudNotice) Signal() {}

// The endpoints, as the clouds' own SDKs name them: GCE_METADATA_HOST (host:port) and
// AWS_EC2_METADATA_SERVICE_ENDPOINT (a URL) override them, for tests and emulators.
const (
	gcpHostEnv  = "GCE_METADATA_HOST"
	awsURLEnv   = "AWS_EC2_METADATA_SERVICE_ENDPOINT"
	metadataIP  = "169.254.169.254"
	awsTokenTTL = "21600" // seconds: the IMDSv2 token's life
)

func gcpHost() string {
	if h := os.Getenv(gcpHostEnv); h != "" {
		return h
	}
	return metadataIP
}

func awsURL() string {
	if u := os.Getenv(awsURLEnv); u != "" {
		return strings.TrimRight(u, "/")
	}
	return "http://" + metadataIP
}

// metadataClient talks to link-local metadata servers: never through a proxy, and with short
// time-outs for the probes and the AWS polls.
var metadataClient = &http.Client{
	Transport: &http.Transport{DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext},
	Timeout:   5 * time.Second,
}

// WatchGCP blocks until GCP's metadata server says the instance is preempted, and returns the
// notice; or until ctx ends (ctx.Err()). It holds a hanging GET on instance/preempted
// (wait_for_change=true, through cloud.google.com/go/compute/metadata), so the notice arrives
// within a round trip. Errors (the server away, a refusal) are retried every GCPRetry.
func WatchGCP(ctx context.Context) (CloudNotice, error) {
	c := metadata.NewClient(nil) // the library's own client: no proxy, no time-out on the hanging GET
	found := errors.New("preempted")
	for {
		err := c.SubscribeWithContext(ctx, "instance/preempted", func(_ context.Context, v string, ok bool) error {
			if ok && strings.TrimSpace(v) == "TRUE" {
				return found
			}
			return nil
		})
		if errors.Is(err, found) {
			return CloudNotice{Cloud: NoticeGCP, Action: "preempted"}, nil
		}
		select {
		case <-ctx.Done():
			return CloudNotice{}, ctx.Err()
		case <-time.After(GCPRetry):
		}
	}
}

// GCPRetry is how long WatchGCP waits before it asks again after an error.
var GCPRetry = 5 * time.Second

// AWSPollInterval is how often WatchAWS asks for a spot interruption notice: AWS gives two
// minutes of notice and recommends polling every 5 seconds.
var AWSPollInterval = 5 * time.Second

// WatchAWS polls AWS's instance metadata for a spot interruption notice every AWSPollInterval,
// with an IMDSv2 session token (renewed when refused), and returns the notice; or ctx.Err() when
// ctx ends. 404 means nothing is scheduled; failed polls are retried at the next tick, so a
// metadata server that is briefly away costs nothing but a late notice.
func WatchAWS(ctx context.Context) (CloudNotice, error) {
	var token string
	tick := time.NewTicker(AWSPollInterval)
	defer tick.Stop()
	for {
		if token == "" {
			token, _ = awsToken(ctx)
		}
		if token != "" {
			n, status, err := awsInstanceAction(ctx, token)
			switch {
			case err == nil && status == http.StatusOK:
				return n, nil
			case status == http.StatusUnauthorized:
				token = "" // expired or revoked: a new one at the next tick
			}
		}
		select {
		case <-ctx.Done():
			return CloudNotice{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// awsToken gets an IMDSv2 session token.
func awsToken(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, awsURL()+"/latest/api/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", awsTokenTTL)
	res, err := metadataClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusOK || len(body) == 0 {
		return "", fmt.Errorf("aws metadata token: HTTP %d", res.StatusCode)
	}
	return strings.TrimSpace(string(body)), nil
}

// awsInstanceAction reads spot/instance-action: the notice and 200, or the status of a refusal
// (404: nothing scheduled), or an error for a failed request or an unreadable notice.
func awsInstanceAction(ctx context.Context, token string) (CloudNotice, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, awsURL()+"/latest/meta-data/spot/instance-action", nil)
	if err != nil {
		return CloudNotice{}, 0, err
	}
	req.Header.Set("X-aws-ec2-metadata-token", token)
	res, err := metadataClient.Do(req)
	if err != nil {
		return CloudNotice{}, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return CloudNotice{}, res.StatusCode, fmt.Errorf("aws instance-action: HTTP %d", res.StatusCode)
	}
	var doc struct {
		Action string    `json:"action"`
		Time   time.Time `json:"time"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 4096)).Decode(&doc); err != nil || doc.Action == "" {
		return CloudNotice{}, res.StatusCode, fmt.Errorf("aws instance-action: not a notice: %v", err)
	}
	return CloudNotice{Cloud: NoticeAWS, Action: doc.Action, At: doc.Time}, http.StatusOK, nil
}

// ProbeTimeout bounds how long Probe waits for a metadata server.
var ProbeTimeout = 2 * time.Second

// Probe finds out which cloud's metadata server answers: NoticeGCP (a reply with the header
// Metadata-Flavor: Google), NoticeAWS (an IMDSv2 token), or NoticeNone when neither does within
// ProbeTimeout. Both are asked at once.
func Probe(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	found := make(chan string, 2)
	go func() {
		if probeGCP(ctx) {
			found <- NoticeGCP
		} else {
			found <- NoticeNone
		}
	}()
	go func() {
		if _, err := awsToken(ctx); err == nil {
			found <- NoticeAWS
		} else {
			found <- NoticeNone
		}
	}()
	for range 2 {
		if c := <-found; c != NoticeNone {
			return c
		}
	}
	return NoticeNone
}

// answers reports whether the metadata server of source answers within ProbeTimeout; true for a
// source that is not a cloud.
func answers(ctx context.Context, source string) bool {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	switch source {
	case NoticeGCP:
		return probeGCP(ctx)
	case NoticeAWS:
		_, err := awsToken(ctx)
		return err == nil
	}
	return true
}

func probeGCP(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+gcpHost()+"/computeMetadata/v1/instance/id", nil)
	if err != nil {
		return false
	}
	req.Header.Set("Metadata-Flavor", "Google")
	res, err := metadataClient.Do(req)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK && res.Header.Get("Metadata-Flavor") == "Google"
}

// WatchNotices watches for a cloud's preemption notice as source says (one of NoticeSources)
// and calls notify once with it. With NoticeAuto it first probes the metadata servers (Probe),
// and returns if none answers: away from a cloud it turns itself off. A cloud named explicitly
// is probed too, and watched whatever the answer; when its metadata server does not answer within
// ProbeTimeout, warn hears so once (a sentence without a trailing newline). It returns when ctx
// ends, after a notice, or after the probe found no cloud; log hears which cloud it watches. Run
// it on its own goroutine: the trainer need not wait for the probe.
func WatchNotices(ctx context.Context, source string, notify func(CloudNotice), log, warn func(string)) {
	if source == NoticeAuto {
		source = Probe(ctx)
		if source == NoticeNone {
			return
		}
		log(fmt.Sprintf("on %s: watching its metadata server for a preemption notice", strings.ToUpper(source)))
	} else if !answers(ctx, source) && ctx.Err() == nil {
		where := map[string]string{NoticeGCP: gcpHost(), NoticeAWS: awsURL()}[source]
		warn(fmt.Sprintf("preemption.notice is %s, but %s's metadata server (%s) cannot be reached: no preemption notice "+
			"can come from it until it answers; SIGTERM still stops the run with an emergency checkpoint", source, strings.ToUpper(source), where))
	}
	watch := map[string]func(context.Context) (CloudNotice, error){NoticeGCP: WatchGCP, NoticeAWS: WatchAWS}[source]
	if watch == nil {
		return
	}
	if n, err := watch(ctx); err == nil {
		notify(n)
	}
}
