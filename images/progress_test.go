package images

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-cri/berth/images/remote"
)

// fakeClock is moved by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }

// readN reads n bytes in one Read (the source is a bytes.Reader).
func readN(t *testing.T, r io.Reader, n int) error {
	t.Helper()
	got, err := r.Read(make([]byte, n))
	if got != n {
		t.Fatalf("read %d bytes, want %d", got, n)
	}
	return err
}

func TestRateWindows(t *testing.T) {
	ctx, w := watchProgress(context.Background(), 0, rateLimit{minRate: 100, window: time.Second})
	defer w.stop()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	w.now = clock.now
	body := w.reader(bytes.NewReader(make([]byte, 1000)))

	// 150 bytes in the first second: fast enough, a new window opens.
	clock.add(time.Second)
	if err := readN(t, body, 150); err != nil {
		t.Fatalf("read at 150 B/s: %v", err)
	}
	// Time without a download running does not count.
	body.Close()
	clock.add(time.Hour)
	body = w.reader(bytes.NewReader(make([]byte, 1000)))
	clock.add(500 * time.Millisecond)
	if err := readN(t, body, 1); err != nil {
		t.Fatalf("read within a window: %v", err)
	}
	// 50 bytes over 2s: below 100 B/s.
	clock.add(1500 * time.Millisecond)
	err := readN(t, body, 49)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "25 B/s") || !strings.Contains(err.Error(), "image.pull_min_rate") {
		t.Fatalf("slow read = %v, want the rate error", err)
	}
	if cause := context.Cause(ctx); cause == nil || cause.Error() != err.Error() {
		t.Fatalf("pull not cancelled with the rate error: %v", cause)
	}
}

// trickle makes the registry send layer blobs a byte every millisecond (the
// config, small, comes at once): never a stall, far below the minimum rate.
func (r *pullRegistry) trickle() {
	h := blobHook(func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		if len(body) < 1024 {
			w.WriteHeader(rec.Code)
			w.Write(body)
			return
		}
		w.WriteHeader(rec.Code)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for _, b := range body {
			select {
			case <-tick.C:
			case <-req.Context().Done():
				return
			}
			w.Write([]byte{b})
			w.(http.Flusher).Flush()
		}
	})
	r.blobHook.Store(&h)
}

func TestPullBelowMinRate(t *testing.T) {
	reg := newPullRegistry(t)
	reg.pushImage(t, "test/app:v1", "trickle")
	reg.trickle()
	s := newService(t, t.TempDir())
	// A byte a millisecond is at most 1000 B/s; the windows are short, and
	// the stall timeout long enough that only the rate can stop the pull.
	s.opts.ProgressTimeout = time.Minute
	s.opts.MinRate, s.opts.MinRateWindow = 100<<10, 300*time.Millisecond
	ref := reg.host + "/test/app:v1"
	_, err := s.Pull(context.Background(), ref, remote.Auth{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "image.pull_min_rate") ||
		!strings.Contains(err.Error(), "B/s over the last") || !strings.Contains(err.Error(), ref) {
		t.Fatalf("trickled pull = %v, want the rate error naming the image", err)
	}
	assertNothingStored(t, s)
}
