package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Upload is the outcome of one checkpoint upload of a Mirror.
type Upload struct {
	Step     int64
	Bytes    int64 // payload bytes sent; 0 when the remote already had the checkpoint
	Duration time.Duration
	Pruned   []int64 // remote checkpoints removed by retention after the upload
	// Err is why the upload failed: the remote keeps what it had.
	Err error
	// Warn is what failed after the checkpoint landed: pruning, or a side file.
	Warn error
	// Superseded are the checkpoints that were queued for upload but replaced by a newer one
	// before their turn came.
	Superseded []int64
}

// Mirror uploads a store's checkpoints to a Remote in the background, newest first: Push queues
// a committed checkpoint and returns at once; one goroutine uploads it, then applies the
// store's retention to the remote. If checkpoints are committed faster than they upload, only
// the newest waiting one is uploaded (the others are Superseded). Flush waits for the queue,
// with a deadline: at the deadline the upload in flight is abandoned, which leaves the remote
// valid (see Remote.Upload).
type Mirror struct {
	remote    *Remote
	opt       Options
	sideFiles []string
	report    func(Upload)
	wake      chan struct{} // capacity 1: a push or Close for the goroutine
	done      chan struct{} // closed when the goroutine ends

	mu         sync.Mutex
	next       *Checkpoint // waiting for its turn
	superseded []int64
	inflight   *Checkpoint
	cancel     context.CancelFunc // of the upload in flight
	idle       chan struct{}      // while a checkpoint waits or uploads: closed when none does; else nil
	closed     bool
}

// NewMirror starts mirroring to remote with the retention of opt (the store's Options). After
// each checkpoint it uploads the local files sideFiles (such as the run's event log) with Put,
// under their base names. report, if not nil, is called from the mirror's goroutine after each
// upload attempt.
func NewMirror(remote *Remote, opt Options, sideFiles []string, report func(Upload)) *Mirror {
	if report == nil {
		report = func(Upload) {}
	}
	m := &Mirror{remote: remote, opt: opt, sideFiles: sideFiles, report: report,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go m.run()
	return m
}

// Push queues the committed checkpoint c for upload, replacing one that waits.
func (m *Mirror) Push(c *Checkpoint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.next != nil {
		m.superseded = append(m.superseded, m.next.Manifest.Step)
	}
	m.next = c
	if m.idle == nil {
		m.idle = make(chan struct{})
	}
	m.signal()
}

// signal wakes the goroutine up.
func (m *Mirror) signal() {
	select {
	case m.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// settle closes idle once nothing waits or uploads; m.mu is held.
func (m *Mirror) settle() {
	if m.next == nil && m.inflight == nil && m.idle != nil {
		close(m.idle)
		m.idle = nil
	}
}

// Flush waits until every pushed checkpoint is uploaded or ctx is done. Then the upload in
// flight is cancelled and the waiting one dropped, Flush returns once the cancelled upload has
// ended, and the error names the step given up. An upload that failed is not retried: Flush does
// not report it (report did).
func (m *Mirror) Flush(ctx context.Context) error {
	m.mu.Lock()
	idle := m.idle
	m.mu.Unlock()
	if idle == nil {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	m.mu.Lock()
	var abandoned []int64
	if m.inflight != nil {
		abandoned = append(abandoned, m.inflight.Manifest.Step)
		m.cancel()
	}
	if m.next != nil {
		abandoned = append(abandoned, m.next.Manifest.Step)
		m.next = nil
	}
	m.settle()
	idle = m.idle
	m.mu.Unlock()
	if idle != nil {
		<-idle // the cancelled upload ends, so the caller may exit at once
	}
	if len(abandoned) == 0 {
		return nil
	}
	return fmt.Errorf("upload of step %d to %s abandoned: %w", abandoned[0], m.remote.URL(), context.Cause(ctx))
}

// Close stops the mirror: the upload in flight is cancelled and nothing more is uploaded. Call
// Flush first to finish the uploads. Closing twice is a no-op. It does not close the Remote.
func (m *Mirror) Close() {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		m.next = nil
		if m.cancel != nil {
			m.cancel()
		}
		m.signal()
	}
	m.mu.Unlock()
	<-m.done
}

func (m *Mirror) run() {
	defer close(m.done)
	for range m.wake {
		for {
			m.mu.Lock()
			c := m.next
			if m.closed || c == nil {
				m.settle()
				closed := m.closed
				m.mu.Unlock()
				if closed {
					return
				}
				break
			}
			m.next, m.inflight = nil, c
			superseded := m.superseded
			m.superseded = nil
			ctx, cancel := context.WithCancel(context.Background())
			m.cancel = cancel
			m.mu.Unlock()

			res := m.upload(ctx, c)
			res.Superseded = superseded
			cancel()
			m.report(res)

			m.mu.Lock()
			m.inflight, m.cancel = nil, nil
			m.settle()
			m.mu.Unlock()
		}
	}
}

func (m *Mirror) upload(ctx context.Context, c *Checkpoint) Upload {
	start := time.Now()
	res := Upload{Step: c.Manifest.Step}
	res.Bytes, res.Err = m.remote.Upload(ctx, c)
	res.Duration = time.Since(start)
	if res.Err != nil {
		return res
	}
	var warn []error
	var err error
	res.Pruned, err = m.remote.Prune(ctx, m.opt, c.Manifest.Step)
	warn = append(warn, err)
	for _, f := range m.sideFiles {
		warn = append(warn, m.remote.PutFile(ctx, f))
	}
	res.Warn = errors.Join(warn...)
	return res
}
