package train

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"spottrain/checkpoint"
	"spottrain/configs"
	"spottrain/events"
	"spottrain/internal/durable"
)

// pull is what pullRemote brought from the remote.
type pull struct {
	ck      *checkpoint.Checkpoint // the downloaded checkpoint, now local; nil if none was newer
	invalid []checkpoint.Invalid   // remote checkpoints that failed verification
	bytes   int64
	took    time.Duration
}

// pullRemote downloads the remote's newest valid checkpoint into store if it is newer than
// local (nil: the run dir has none), and the remote's event log if the run dir has none, so a
// fresh VM continues the run and its history. A remote that cannot be read is an error: starting
// over would waste the work stored there.
func pullRemote(ctx context.Context, remote *checkpoint.Remote, store *checkpoint.Store, local *checkpoint.Checkpoint, runDir string) (*pull, error) {
	after := int64(-1)
	if local != nil {
		after = local.Manifest.Step
	}
	start := time.Now()
	p := &pull{}
	ck, invalid, err := remote.Download(ctx, store, after)
	p.invalid = invalid
	switch {
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
	case err != nil:
		return nil, err
	default:
		p.ck, p.took = ck, time.Since(start)
		for _, f := range ck.Manifest.Files {
			p.bytes += f.Size
		}
	}
	logPath := filepath.Join(runDir, events.FileName)
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		return p, err
	}
	data, err := remote.Get(ctx, events.FileName)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	return p, durable.WriteFile(logPath, data, 0o644)
}

// startMirror starts uploading the checkpoints that c commits to remote, with the store's
// retention opt and the run's event log beside them. latest (nil: none) is the checkpoint the run
// resumes from; if local, it is uploaded too: a no-op if the remote has it, else the upload an
// earlier exit cut short.
func (c *checkpointer) startMirror(remote *checkpoint.Remote, opt checkpoint.Options, runDir string, latest *checkpoint.Checkpoint, local bool) *checkpoint.Mirror {
	c.mirror = checkpoint.NewMirror(remote, opt, []string{filepath.Join(runDir, events.FileName)}, c.reportUpload)
	if latest != nil && local {
		c.mirror.Push(latest)
	}
	return c.mirror
}

// finishUploads waits for the mirror's uploads as the run ends with err: on a notice until grace
// after it, on another error until grace from now, and without a limit when the run finished, in
// which case a failed upload of the final checkpoint becomes the run's error. It returns the
// deadline (zero: none) and the run's error.
func (c *checkpointer) finishUploads(ctx context.Context, err error, grace time.Duration, sum *Summary) (time.Time, error) {
	deadline := time.Now().Add(grace)
	var pe *PreemptedError
	if errors.As(err, &pe) {
		deadline = pe.Notice.At.Add(grace)
	} else if err == nil {
		deadline = time.Time{}
	}
	uctx, cancel := contextUntil(context.WithoutCancel(ctx), deadline)
	defer cancel()
	if ferr := c.mirror.Flush(uctx); ferr != nil {
		fmt.Fprintf(c.log, "warning: %v; the remote keeps its previous checkpoint\n", ferr)
	}
	if err == nil && sum != nil && sum.Result != nil {
		err = c.uploadError(sum.Result.Steps)
	}
	return deadline, err
}

// contextUntil is ctx with deadline, or ctx itself (with a no-op cancel) for a zero deadline.
func contextUntil(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	if deadline.IsZero() {
		return ctx, func() {}
	}
	return context.WithDeadline(ctx, deadline)
}

// reportUpload reports an upload of the mirror: a log line and an event. It runs on the
// mirror's goroutine.
func (c *checkpointer) reportUpload(u checkpoint.Upload) {
	c.uploadMu.Lock()
	c.uploaded = u
	c.uploadMu.Unlock()
	if u.Err != nil {
		fmt.Fprintf(c.log, "warning: checkpoint upload failed, the remote keeps its previous one: %v\n", u.Err)
		c.events.Emit(events.CheckpointUploadFailed{Step: u.Step, Error: u.Err.Error()})
		return
	}
	up := events.CheckpointUpload{Step: u.Step, Bytes: u.Bytes, UploadMS: u.Duration.Seconds() * 1000,
		Pruned: nonNil(u.Pruned), Superseded: nonNil(u.Superseded)}
	if u.Warn != nil {
		fmt.Fprintf(c.log, "warning: after the upload of step %d: %v\n", u.Step, u.Warn)
		up.Warning = u.Warn.Error()
	}
	c.events.Emit(up)
}

// uploadError is the error of the upload of step, if it was the last one tried and it failed.
func (c *checkpointer) uploadError(step int) error {
	c.uploadMu.Lock()
	defer c.uploadMu.Unlock()
	if u := c.uploaded; u.Step == int64(step) && u.Err != nil {
		return fmt.Errorf("the final checkpoint is in the run dir but not in object storage: %w", u.Err)
	}
	return nil
}

func nonNil(steps []int64) []int64 {
	if steps == nil {
		return []int64{}
	}
	return steps
}

// checkRegion returns a *configs.Error at checkpoint.remote when remote is an s3:// URL without a
// region that the AWS SDK's default chain (AWS_REGION, the shared config files) does not supply
// either: the SDK would fail later, with a DNS message. It reads no network.
func checkRegion(ctx context.Context, remote string) error {
	base, query, _ := strings.Cut(remote, "?")
	if !strings.HasPrefix(base, "s3://") {
		return nil
	}
	if q, err := url.ParseQuery(query); err == nil && q.Get("region") != "" {
		return nil
	}
	if aws, err := awsconfig.LoadDefaultConfig(ctx); err == nil && aws.Region != "" {
		return nil
	}
	return &configs.Error{Key: "checkpoint.remote", Msg: fmt.Sprintf("%s names no AWS region: add ?region=REGION to it, or set AWS_REGION", remote)}
}
