package distributed

import (
	"bytes"
	"io"
	"sync"
)

// A lineWriter writes whole lines to w, each prefixed, in one Write each; it keeps an unfinished
// line until its newline comes or flush. One goroutine writes to it (exec.Cmd's copier), then
// another flushes it, once that is done.
type lineWriter struct {
	w       io.Writer
	prefix  string
	mu      sync.Mutex
	pending []byte // the unfinished line
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	lw.pending = append(lw.pending, p...)
	end := bytes.LastIndexByte(lw.pending, '\n') + 1
	if end == 0 {
		return len(p), nil
	}
	var out []byte
	for line := range bytes.Lines(lw.pending[:end]) {
		out = append(append(out, lw.prefix...), line...)
	}
	lw.pending = append(lw.pending[:0], lw.pending[end:]...)
	if _, err := lw.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes the unfinished line, if any, with a newline.
func (lw *lineWriter) flush() {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.pending) > 0 {
		_, _ = lw.w.Write(append(append([]byte(lw.prefix), lw.pending...), '\n'))
		lw.pending = nil
	}
}
