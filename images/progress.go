package images

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progressWatch cancels a context whose bytes stop flowing for longer than
// the timeout (every read that returns data pushes the deadline back), and
// one whose bytes flow slower than minRate: a registry that trickles a byte
// now and then never stalls, but never finishes either. Each layer download
// has its own (so both limits hold per layer, whatever the others do), and a
// pull has one for what comes before the layers (resolving, the config).
//
// The rate is measured over windows of transfer: a window opens when a
// connection of the download starts while none runs, and closes at the first
// read at least a window long after it opened. Time with no connection
// running (waiting to resume) is not counted, and a read that never comes is
// the stall timeout's to catch.
type progressWatch struct {
	bytes  atomic.Int64 // read so far
	onRead func(n int)  // also told of every read (the service's byte count)

	mu      sync.Mutex
	timer   *time.Timer
	timeout time.Duration
	cancel  context.CancelCauseFunc

	minRate  int64 // bytes/s; 0 disables the rate check
	window   time.Duration
	now      func() time.Time
	active   int       // blob downloads running
	winStart time.Time // when the current window opened
	winBytes int64     // bytes read in it
}

// rateLimit is the rate check: at least minRate bytes/s over each window.
type rateLimit struct {
	minRate int64
	window  time.Duration
}

// watchProgress returns ctx cancelled (with a cause naming the stall or the
// slow rate) when no progress is reported for timeout or the rate falls
// below rate; a zero timeout, rate or window watches nothing. stop releases it.
func watchProgress(ctx context.Context, timeout time.Duration, rate rateLimit) (context.Context, *progressWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &progressWatch{timeout: timeout, cancel: cancel, now: time.Now}
	if rate.minRate > 0 && rate.window > 0 {
		w.minRate, w.window = rate.minRate, rate.window
	}
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

// disarm stops the stall timer (the rate check only runs on reads).
func (w *progressWatch) disarm() {
	if w.timer != nil {
		w.mu.Lock()
		w.timer.Stop()
		w.mu.Unlock()
	}
}

func (w *progressWatch) stop() {
	w.disarm()
	w.cancel(nil)
}

// reader reports progress for every read of a blob download that returns
// data; Close ends the download (the caller still closes r).
func (w *progressWatch) reader(r io.Reader) io.ReadCloser {
	w.mu.Lock()
	if w.active == 0 {
		w.winStart, w.winBytes = w.now(), 0
	}
	w.active++
	w.mu.Unlock()
	return &progressReader{r: r, w: w}
}

// read counts n bytes; it returns the rate error when a window ends below
// the minimum rate, and cancels the pull with it.
func (w *progressWatch) read(n int) error {
	w.touch()
	w.bytes.Add(int64(n))
	if w.onRead != nil {
		w.onRead(n)
	}
	if w.minRate == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.winBytes += int64(n)
	elapsed := w.now().Sub(w.winStart)
	if elapsed < w.window {
		return nil
	}
	if rate := float64(w.winBytes) / elapsed.Seconds(); rate < float64(w.minRate) {
		err := fmt.Errorf("transfer rate %.0f B/s over the last %s is below %d B/s (image.pull_min_rate): %w",
			rate, elapsed.Round(time.Millisecond), w.minRate, context.DeadlineExceeded)
		w.cancel(err)
		return err
	}
	w.winStart, w.winBytes = w.now(), 0
	return nil
}

func (w *progressWatch) done() {
	w.mu.Lock()
	w.active--
	w.mu.Unlock()
}

type progressReader struct {
	r      io.Reader
	w      *progressWatch
	closed sync.Once
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		if rerr := p.w.read(n); rerr != nil {
			return n, rerr
		}
	}
	return n, err
}

func (p *progressReader) Close() error {
	p.closed.Do(p.w.done)
	return nil
}
