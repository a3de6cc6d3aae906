package images

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"
)

// progressWatch cancels a pull whose bytes stop flowing for longer than the
// timeout. Every read that returns data pushes the deadline back.
type progressWatch struct {
	mu      sync.Mutex
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelCauseFunc
}

// watchProgress returns ctx cancelled (with a cause naming the stall) when no
// progress is reported for timeout; a zero timeout watches nothing. stop
// releases it.
func watchProgress(ctx context.Context, timeout time.Duration) (context.Context, *progressWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &progressWatch{timeout: timeout, cancel: cancel}
	if timeout > 0 {
		w.timer = time.AfterFunc(timeout, func() {
			cancel(fmt.Errorf("no progress for %s (image.pull_progress_timeout): %w", timeout, context.DeadlineExceeded))
		})
	}
	return ctx, w
}

func (w *progressWatch) touch() {
	if w.timer == nil {
		return
	}
	w.mu.Lock()
	w.timer.Reset(w.timeout)
	w.mu.Unlock()
}

func (w *progressWatch) stop() {
	if w.timer != nil {
		w.timer.Stop()
	}
	w.cancel(nil)
}

// reader reports progress for every read that returns data.
func (w *progressWatch) reader(r io.Reader) io.Reader {
	return progressReader{r: r, w: w}
}

type progressReader struct {
	r io.Reader
	w *progressWatch
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.w.touch()
	}
	return n, err
}
