package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/berth-cri/berth/images/content"
	"github.com/berth-cri/berth/images/remote"
)

// Defaults of the ranged fetch (Options.FetchChunkSize, FetchConnections,
// FetchParallelMin).
const (
	defaultFetchChunkSize   = 16 << 20
	defaultFetchConnections = 4
)

// A blob request is sent again after a dropped (or idle) connection, from
// where it stopped, up to maxFetchAttempts times in a row without a byte
// coming in between.
const maxFetchAttempts = 5

// fetchPlan is how one large blob is downloaded: in chunks of chunk bytes
// over up to conns connections, when it has at least minParallel bytes.
type fetchPlan struct {
	chunk       int64
	conns       int
	minParallel int64
	// idle cuts one connection that brought nothing for that long, so that
	// it is resumed on a fresh one while the layer's stall timeout (twice
	// as long) still runs; 0 never cuts.
	idle time.Duration
}

func (s *Service) fetchPlan() fetchPlan {
	p := fetchPlan{chunk: s.opts.FetchChunkSize, conns: s.opts.FetchConnections, minParallel: s.opts.FetchParallelMin,
		idle: s.opts.ProgressTimeout / 2}
	if p.chunk <= 0 {
		p.chunk = defaultFetchChunkSize
	}
	if p.conns <= 0 {
		p.conns = defaultFetchConnections
	}
	if p.minParallel <= 0 {
		p.minParallel = p.chunk * int64(p.conns)
	}
	return p
}

// rangeFetcher asks for bytes [start, end) of one blob (end < 0: to its
// end); it is remote.Resolved.FetchRange for one layer.
type rangeFetcher func(ctx context.Context, start, end int64) (*remote.BlobPart, error)

// downloader writes one blob into an Ingest.
type downloader struct {
	fetch   rangeFetcher
	in      *content.Ingest
	blob    digest.Digest
	plan    fetchPlan
	watch   *progressWatch
	resumed *atomic.Uint64 // the service's count of resumed requests
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// run downloads the whole blob. A blob of at least plan.minParallel bytes
// is asked for in chunks: the first chunk's answer tells whether the
// registry serves ranges; if it does, plan.conns connections fetch the
// chunks in order, each written at its offset, while the unpacker reads
// the blob behind them; if it does not (200 and the whole blob), that
// answer is the one stream. A smaller blob is one stream from the start.
func (d *downloader) run(ctx context.Context) error {
	size := d.in.Size()
	if d.plan.conns < 2 || size < d.plan.minParallel || size <= d.plan.chunk {
		return d.fetchRange(ctx, 0, size, nil)
	}
	chunk := d.plan.chunk
	first, err := d.open(ctx, 0, chunk)
	if err != nil {
		return fmt.Errorf("blob %s: bytes 0-%d: %w", d.blob, chunk, err)
	}
	if !first.Ranged {
		log.G(ctx).WithField("blob", d.blob).Debug("registry serves no ranges: fetching the blob in one stream")
		return d.fetchRange(ctx, 0, size, &first)
	}
	chunks := (size + chunk - 1) / chunk
	var next atomic.Int64
	next.Store(1)
	worker := func(ctx context.Context) error {
		for {
			k := next.Add(1) - 1
			if k >= chunks {
				return nil
			}
			if err := d.fetchRange(ctx, k*chunk, min((k+1)*chunk, size), nil); err != nil {
				return err
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := d.fetchRange(gctx, 0, chunk, &first); err != nil {
			return err
		}
		return worker(gctx)
	})
	for range min(int64(d.plan.conns), chunks) - 1 {
		g.Go(func() error { return worker(gctx) })
	}
	return g.Wait()
}

// answer is a blob request's answer, with the cancellation of its request.
type answer struct {
	*remote.BlobPart
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// open sends the request for [start, end) of the blob (a plain GET for the
// whole blob), trying again while the failure is a retryable one.
func (d *downloader) open(ctx context.Context, start, end int64) (answer, error) {
	if start == 0 && end == d.in.Size() {
		end = -1
	}
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithCancelCause(ctx)
		part, err := d.fetch(rctx, start, end)
		if err == nil {
			return answer{part, rctx, cancel}, nil
		}
		cancel(nil)
		if ctx.Err() != nil {
			return answer{}, context.Cause(ctx)
		}
		if !remote.Retryable(err) || attempt >= maxFetchAttempts {
			return answer{}, err
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return answer{}, err
		}
	}
}

// fetchRange writes bytes [start, end) of the blob, from first (an answer
// already in hand) or from new requests; a connection that drops or goes
// idle is resumed from the byte where it stopped.
func (d *downloader) fetchRange(ctx context.Context, start, end int64, first *answer) error {
	pos, failures := start, 0
	for pos < end {
		var a answer
		if first != nil {
			a, first = *first, nil
		} else {
			var err error
			if a, err = d.open(ctx, pos, end); err != nil {
				return fmt.Errorf("blob %s: bytes %d-%d: %w", d.blob, pos, end, err)
			}
		}
		n, err := d.copyPart(a, pos, end)
		pos += n
		if pos >= end {
			return nil
		}
		var werr writeError
		switch {
		case errors.As(err, &werr):
			return werr.err // the disk's error: final
		case ctx.Err() != nil:
			return context.Cause(ctx)
		}
		if n > 0 {
			failures = 0
		}
		if failures++; failures >= maxFetchAttempts {
			return fmt.Errorf("blob %s: bytes %d-%d: connection lost %d times without progress: %w", d.blob, pos, end, failures, err)
		}
		d.resumed.Add(1)
		log.G(ctx).WithError(err).WithFields(log.Fields{"blob": d.blob, "offset": pos}).Debug("blob connection lost: resuming")
		if err := sleep(ctx, backoff(failures)); err != nil {
			return err
		}
	}
	return nil
}

type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }

// errIdle is why a connection that brought nothing for plan.idle is cut.
var errIdle = errors.New("connection idle")

// copyPart writes a's bytes for [pos, end) at their offsets and ends its
// request; it returns how many it wrote, and why it stopped short: the
// body's error (io.ErrUnexpectedEOF when it just ended, errIdle when it was
// cut for idling), or a writeError.
func (d *downloader) copyPart(a answer, pos, end int64) (int64, error) {
	defer a.cancel(nil)
	defer a.Body.Close()
	body := d.watch.reader(a.Body)
	defer body.Close()
	// Cut the request when its connection idles: the read that waits
	// fails, and the caller resumes from where it stopped.
	if d.plan.idle > 0 {
		t := time.AfterFunc(d.plan.idle, func() { a.cancel(errIdle) })
		defer t.Stop()
		body = &idleReader{ReadCloser: body, timer: t, after: d.plan.idle}
	}
	bodyErr := func(err error) error {
		if errors.Is(context.Cause(a.ctx), errIdle) {
			return errIdle
		}
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	// A registry without ranges sends the blob from its start.
	if skip := pos - a.Start; skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			return 0, bodyErr(err)
		}
	}
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var written int64
	for pos+written < end {
		n, err := body.Read(buf[:min(int64(len(buf)), end-pos-written)])
		if n > 0 {
			if _, werr := d.in.WriteAt(buf[:n], pos+written); werr != nil {
				return written, writeError{werr}
			}
			written += int64(n)
		}
		if err != nil {
			return written, bodyErr(err)
		}
	}
	return written, nil
}

// idleReader pushes an idle timer back at every read that brings bytes.
type idleReader struct {
	io.ReadCloser
	timer *time.Timer
	after time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.timer.Reset(r.after)
	}
	return n, err
}

// backoff is the wait before the attempt after `failures` in a row: none
// after the first (a dropped connection is resumed at once), then growing.
func backoff(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	return min(100*time.Millisecond<<(failures-2), 2*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// readAhead reads r in a goroutine into a few buffers ahead of its reader,
// so that what produces the bytes (decompression, hashing) runs while the
// reader (the unpacker) writes files. Memory: n buffers of size bytes.
type readAhead struct {
	ch   chan []byte
	free chan []byte
	done chan struct{}
	once sync.Once
	buf  []byte // the buffer being read, and its unread part
	cur  []byte
	err  error // set before ch is closed
}

// newReadAhead starts reading r; after is called in the goroutine once it
// is done with r (so that r's owner may release it there and only there).
func newReadAhead(r io.Reader, size, n int, after func()) *readAhead {
	ra := &readAhead{ch: make(chan []byte, n), free: make(chan []byte, n), done: make(chan struct{})}
	for range n {
		ra.free <- make([]byte, size)
	}
	go ra.fill(r, after)
	return ra
}

func (ra *readAhead) fill(r io.Reader, after func()) {
	defer close(ra.ch)
	defer after()
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.done:
			return
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			select {
			case ra.ch <- buf[:n]:
			case <-ra.done:
				return
			}
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			ra.err = err
			return
		}
	}
}

func (ra *readAhead) Read(p []byte) (int, error) {
	if len(ra.cur) == 0 {
		buf, ok := <-ra.ch
		if !ok {
			return 0, ra.err
		}
		ra.buf, ra.cur = buf, buf
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	if len(ra.cur) == 0 {
		ra.free <- ra.buf[:cap(ra.buf)]
		ra.buf, ra.cur = nil, nil
	}
	return n, nil
}

// Close stops the goroutine at its next buffer (it does not wait for it).
func (ra *readAhead) Close() { ra.once.Do(func() { close(ra.done) }) }
