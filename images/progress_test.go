package images

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"

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

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(match string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, l := range strings.Split(b.buf.String(), "\n") {
		if strings.Contains(l, match) {
			out = append(out, l)
		}
	}
	return out
}

// logTo returns a context whose logger writes text lines into a buffer.
func logTo(ctx context.Context) (context.Context, *syncBuffer) {
	buf := &syncBuffer{}
	l := logrus.New()
	l.SetOutput(buf)
	l.SetLevel(logrus.InfoLevel)
	l.SetFormatter(&logrus.TextFormatter{DisableColors: true, DisableTimestamp: true})
	return log.WithLogger(ctx, logrus.NewEntry(l)), buf
}

// A running pull logs its progress at a steady pace: bytes done of the
// total, the rate, the layers done, and each layer being fetched.
func TestPullProgressLines(t *testing.T) {
	reg := newPullRegistry(t)
	pushed := reg.pushImage(t, "test/app:v1", "progress")
	layers, _ := pushed.Layers()
	gated, _ := layers[0].Digest()
	gate := reg.gate(t, gated)
	s := newService(t, t.TempDir())
	s.opts.ProgressInterval = 20 * time.Millisecond
	s.opts.MaxConcurrentDownloads = 3
	ctx, logs := logTo(context.Background())
	pulled := make(chan error, 1)
	go func() {
		_, err := s.Pull(ctx, reg.host+"/test/app:v1", remote.Auth{})
		pulled <- err
	}()
	<-gate.held
	short := gated.Hex[:12]
	var line string
	for deadline := time.Now().Add(guard); line == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range logs.lines("pull progress") {
			if strings.Contains(l, "layers=\"2 of 3 done\"") && strings.Contains(l, short) {
				line = l
			}
		}
	}
	if line == "" {
		t.Fatalf("no progress line with the gated layer fetching and the others done:\n%s", strings.Join(logs.lines(""), "\n"))
	}
	for _, want := range []string{"image=\"" + reg.host + "/test/app:v1\"", "bytes=", "total=", "rate=", "progress=", "fetching=\"" + short} {
		if !strings.Contains(line, want) {
			t.Fatalf("progress line %q lacks %q", line, want)
		}
	}
	gate.open()
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	if done := logs.lines("pulled image"); len(done) != 1 || !strings.Contains(done[0], "fetched=") || !strings.Contains(done[0], "rate=") {
		t.Fatalf("final line = %v", done)
	}
	// No progress line after the pull.
	n := len(logs.lines("pull progress"))
	time.Sleep(60 * time.Millisecond)
	if len(logs.lines("pull progress")) != n {
		t.Fatal("progress lines go on after the pull")
	}
	st := s.PullStats()
	if st.Pulls["ok"].Count != 1 || st.Layers["fetched"] != 3 || st.BytesFetched == 0 || st.LayerDurations["ok"].Count != 3 || st.Active != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if h := st.Pulls["ok"]; h.Sum <= 0 || h.Buckets[len(h.Buckets)-1].Count != 1 {
		t.Fatalf("pull duration histogram = %+v", h)
	}
	// A second pull of the same image reuses every layer.
	if _, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{}); err != nil {
		t.Fatal(err)
	}
	if st := s.PullStats(); st.Layers["reused"] != 3 || st.Pulls["ok"].Count != 2 {
		t.Fatalf("stats after a re-pull = %+v", st)
	}
}

// The stall timeout holds per layer: one layer whose bytes stop fails the
// pull even while another layer's bytes still trickle in.
func TestStallTimeoutPerLayer(t *testing.T) {
	reg := newPullRegistry(t)
	pushed := reg.pushImage(t, "test/app:v1", "stall")
	layers, _ := pushed.Layers()
	trickled, _ := layers[0].Digest()
	stalled, _ := layers[1].Digest()
	h := blobHook(func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		switch {
		case strings.HasSuffix(req.URL.Path, stalled.String()):
			<-req.Context().Done()
		case strings.HasSuffix(req.URL.Path, trickled.String()):
			rec := httptest.NewRecorder()
			reg.ServeHTTP(rec, req)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			for _, b := range rec.Body.Bytes() {
				select {
				case <-time.After(10 * time.Millisecond):
				case <-req.Context().Done():
					return
				}
				w.Write([]byte{b})
				w.(http.Flusher).Flush()
			}
		default:
			reg.ServeHTTP(w, req)
		}
	})
	reg.blobHook.Store(&h)
	s := newService(t, t.TempDir())
	s.opts.ProgressTimeout = 300 * time.Millisecond
	s.opts.MaxConcurrentDownloads = 3
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	_, err := s.Pull(ctx, reg.host+"/test/app:v1", remote.Auth{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no progress for 300ms") ||
		!strings.Contains(err.Error(), stalled.String()) {
		t.Fatalf("pull with a stalled layer = %v, want its stall timeout", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the pull ran until the test's guard")
	}
	waitPullsDone(t, s)
	assertNothingStored(t, s)
}
