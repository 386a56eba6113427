package train

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// progress reports training progress: a redrawn bar with rate and ETA on a terminal, plain log
// lines otherwise.
type progress struct {
	w        io.Writer
	terminal bool
	total    int
	first    int // the step this process started from
	start    time.Time
	drawn    bool // a bar is on the current line
}

func newProgress(w io.Writer, terminal bool, total, first int) *progress {
	return &progress{w: w, terminal: terminal, total: total, first: first, start: time.Now()}
}

func (p *progress) step(step, epoch int, loss, lr float64) {
	elapsed := time.Since(p.start)
	rate := float64(step-p.first) / elapsed.Seconds()
	eta := time.Duration(float64(p.total-step) / rate * float64(time.Second)).Round(time.Second)
	if !p.terminal {
		fmt.Fprintf(p.w, "step %d/%d | epoch %d | loss %.5f | lr %.3e | %.1f steps/s | eta %s\n",
			step, p.total, epoch+1, loss, lr, rate, eta)
		return
	}
	const width = 30
	filled := width * step / p.total
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r[%s] %3d%% %d/%d | epoch %d | loss %.5f | %.1f steps/s | eta %s ",
		bar, 100*step/p.total, step, p.total, epoch+1, loss, rate, eta)
	p.drawn = true
}

func (p *progress) epoch(e EpochResult) {
	p.done()
	fmt.Fprintf(p.w, "epoch %d done in %s | train loss %.5f | val %s\n",
		e.Epoch+1, e.Duration.Round(time.Millisecond), e.TrainLoss, e.Val)
}

// done ends a bar's line so that the next output starts on a line of its own.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
