package images

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-cri/berth/images/remote"
)

// Test sizes: a "big" layer of ~600 KiB of random (incompressible) bytes,
// fetched in 64 KiB ranges over 4 connections from 128 KiB on.
const (
	testChunk       = 64 << 10
	testConns       = 4
	testParallelMin = 128 << 10
	bigLayerBytes   = 600 << 10
)

func rangedService(t *testing.T) *Service {
	t.Helper()
	s := newService(t, t.TempDir())
	s.opts.FetchChunkSize, s.opts.FetchConnections, s.opts.FetchParallelMin = testChunk, testConns, testParallelMin
	return s
}

func randomString(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// testLayer is one gzip layer of a pushed image.
type testLayer struct {
	blob   v1.Hash
	bytes  []byte // the compressed blob
	files  map[string]string
	layer  v1.Layer
	diffID v1.Hash
}

func newTestLayer(t *testing.T, files map[string]string) testLayer {
	t.Helper()
	raw := tarLayer(t, files)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	blob, _ := l.Digest()
	diffID, _ := l.DiffID()
	return testLayer{blob: blob, bytes: b, files: files, layer: l, diffID: diffID}
}

// pushLayers pushes an image of the given layers, bottom first.
func (r *pullRegistry) pushLayers(t *testing.T, repoTag string, layers ...testLayer) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, l.layer); err != nil {
			t.Fatal(err)
		}
	}
	ref, _ := name.ParseReference(r.host + "/" + repoTag)
	if err := ggcr.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

// bigImage pushes test/big:v1: a small layer under a big one.
func (r *pullRegistry) bigImage(t *testing.T) (small, big testLayer) {
	t.Helper()
	small = newTestLayer(t, map[string]string{"etc/os-release": "small"})
	big = newTestLayer(t, map[string]string{"data/big": randomString(t, bigLayerBytes)})
	if len(big.bytes) < testParallelMin+3*testChunk {
		t.Fatalf("the big layer has only %d bytes", len(big.bytes))
	}
	r.pushLayers(t, "test/big:v1", small, big)
	return small, big
}

// blobLog records the GETs of one blob: their Range headers, and how many
// ran at once at most.
type blobLog struct {
	mu       sync.Mutex
	ranges   []string
	inflight int
	peak     int
}

func (b *blobLog) enter(rng string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ranges = append(b.ranges, rng)
	b.inflight++
	b.peak = max(b.peak, b.inflight)
}

func (b *blobLog) leave() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inflight--
}

func (b *blobLog) get() ([]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.ranges), b.peak
}

// watchBlob logs the GETs of blob and lets serve answer them (nil: the
// registry answers, after a short pause so that connections overlap).
func (r *pullRegistry) watchBlob(blob v1.Hash, serve func(w http.ResponseWriter, req *http.Request, reg http.Handler)) *blobLog {
	bl := &blobLog{}
	h := blobHook(func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		if !strings.HasSuffix(req.URL.Path, "/blobs/"+blob.String()) {
			reg.ServeHTTP(w, req)
			return
		}
		bl.enter(req.Header.Get("Range"))
		defer bl.leave()
		if serve != nil {
			serve(w, req, reg)
			return
		}
		time.Sleep(5 * time.Millisecond)
		reg.ServeHTTP(w, req)
	})
	r.blobHook.Store(&h)
	return bl
}

// assertLayers checks that the image's layers hold the test layers' files.
func assertLayers(t *testing.T, s *Service, img *Image, layers ...testLayer) {
	t.Helper()
	if len(img.Layers) != len(layers) {
		t.Fatalf("image has %d layers, want %d", len(img.Layers), len(layers))
	}
	for i, l := range layers {
		for n, want := range l.files {
			got, err := os.ReadFile(filepath.Join(s.layerDir(img.Layers[i]), n))
			if err != nil || string(got) != want {
				t.Fatalf("layer %d file %s: %d bytes, %v", i, n, len(got), err)
			}
		}
	}
}

func assertStoredBlob(t *testing.T, s *Service, l testLayer) {
	t.Helper()
	got, err := s.content.ReadAll(digest.Digest(l.blob.String()))
	if err != nil || !bytes.Equal(got, l.bytes) {
		t.Fatalf("stored blob %s: %d bytes (want %d), %v", l.blob, len(got), len(l.bytes), err)
	}
}

// A large blob is fetched in ranges over several connections and stored
// exactly as the registry holds it; a small one in one plain GET.
func TestRangedFetch(t *testing.T) {
	reg := newPullRegistry(t)
	small, big := reg.bigImage(t)
	bl := reg.watchBlob(big.blob, nil)
	s := rangedService(t)
	img, err := s.Pull(context.Background(), reg.host+"/test/big:v1", remote.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	assertLayers(t, s, img, small, big)
	assertStoredBlob(t, s, big)
	assertStoredBlob(t, s, small)

	ranges, peak := bl.get()
	size := len(big.bytes)
	var want []string
	for off := 0; off < size; off += testChunk {
		want = append(want, fmt.Sprintf("bytes=%d-%d", off, min(off+testChunk, size)-1))
	}
	slices.Sort(ranges)
	slices.Sort(want)
	if !slices.Equal(ranges, want) {
		t.Fatalf("ranges asked:\n%v\nwant each chunk once:\n%v", ranges, want)
	}
	if peak > testConns || peak < 2 {
		t.Fatalf("%d requests at once, want 2 to %d", peak, testConns)
	}
	st := s.PullStats()
	if st.BytesFetched < uint64(size+len(small.bytes)) || st.Layers["fetched"] != 2 || st.Pulls["ok"].Count != 1 || st.Resumed != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// A registry that ignores Range answers the first chunk's request with the
// whole blob: that answer is used as the one stream, nothing is asked twice.
func TestRangesIgnored(t *testing.T) {
	reg := newPullRegistry(t)
	small, big := reg.bigImage(t)
	bl := reg.watchBlob(big.blob, func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		req.Header.Del("Range")
		reg.ServeHTTP(w, req)
	})
	s := rangedService(t)
	img, err := s.Pull(context.Background(), reg.host+"/test/big:v1", remote.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	assertLayers(t, s, img, small, big)
	assertStoredBlob(t, s, big)
	if ranges, _ := bl.get(); len(ranges) != 1 {
		t.Fatalf("%d requests for the blob (%v), want the one that got it whole", len(ranges), ranges)
	}
}

// dropOnce makes the first GET of the blob that asks for bytes from `from`
// on send half of what it owes, then drop the connection.
func dropOnce(from string) (func(w http.ResponseWriter, req *http.Request, reg http.Handler), *atomic.Bool) {
	var dropped atomic.Bool
	return func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		rng := req.Header.Get("Range")
		if !strings.HasPrefix(rng, from) || !dropped.CompareAndSwap(false, true) {
			reg.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		// Hijack and close: the client sees the body end early.
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}, &dropped
}

// A connection dropped mid-blob is resumed from the byte where it stopped,
// in one stream and in a range alike; the blob is still exact.
func TestResumeAfterDrop(t *testing.T) {
	for _, tt := range []struct {
		name  string
		conns int
		from  string // the request to drop
	}{
		{"one stream", 1, ""},
		{"a range", testConns, fmt.Sprintf("bytes=%d-", 2*testChunk)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newPullRegistry(t)
			small, big := reg.bigImage(t)
			serve, dropped := dropOnce(tt.from)
			bl := reg.watchBlob(big.blob, serve)
			s := rangedService(t)
			s.opts.FetchConnections = tt.conns
			img, err := s.Pull(context.Background(), reg.host+"/test/big:v1", remote.Auth{})
			if err != nil {
				t.Fatal(err)
			}
			if !dropped.Load() {
				t.Fatal("no connection was dropped")
			}
			assertLayers(t, s, img, small, big)
			assertStoredBlob(t, s, big)
			if st := s.PullStats(); st.Resumed != 1 {
				t.Fatalf("resumed %d requests, want 1", st.Resumed)
			}
			// The resumed request starts past the first one's start, where
			// the bytes stopped.
			ranges, _ := bl.get()
			var resumed []string
			for _, r := range ranges {
				if r != "" && !slices.Contains(wantChunks(len(big.bytes), tt.conns), r) {
					resumed = append(resumed, r)
				}
			}
			if len(resumed) != 1 {
				t.Fatalf("requests %v: want one resumed mid-range", ranges)
			}
		})
	}
}

// wantChunks are the ranges a fetch asks for without resuming.
func wantChunks(size, conns int) []string {
	if conns < 2 {
		return nil // one plain GET
	}
	var out []string
	for off := 0; off < size; off += testChunk {
		out = append(out, fmt.Sprintf("bytes=%d-%d", off, min(off+testChunk, size)-1))
	}
	return out
}

// A range with a wrong byte fails the pull and stores nothing: the blob's
// digest is checked on the whole, reassembled blob.
func TestRangedWrongByteStoresNothing(t *testing.T) {
	reg := newPullRegistry(t)
	_, big := reg.bigImage(t)
	bad := fmt.Sprintf("bytes=%d-", 3*testChunk)
	reg.watchBlob(big.blob, func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		if !strings.HasPrefix(req.Header.Get("Range"), bad) {
			reg.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		body[len(body)/2] ^= 0x01
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
	s := rangedService(t)
	_, err := s.Pull(context.Background(), reg.host+"/test/big:v1", remote.Auth{})
	if err == nil || !strings.Contains(err.Error(), big.blob.String()) {
		t.Fatalf("pull with a wrong byte = %v, want a failure naming the blob", err)
	}
	if s.content.Has(digest.Digest(big.blob.String())) {
		t.Fatal("the bad blob was stored")
	}
	assertNothingStored(t, s)
}

// Layers unpack in parallel, in whatever order their blobs arrive; the
// image and the layer records keep the manifest's order.
func TestLayersUnpackInAnyOrder(t *testing.T) {
	reg := newPullRegistry(t)
	var layers []testLayer
	for i := range 3 {
		layers = append(layers, newTestLayer(t, map[string]string{fmt.Sprintf("layer%d", i): fmt.Sprintf("content %d", i)}))
	}
	reg.pushLayers(t, "test/order:v1", layers...)
	gate := reg.gate(t, layers[0].blob) // the bottom layer comes last
	s := newService(t, t.TempDir())
	s.opts.MaxConcurrentDownloads = 3
	pulled := make(chan error, 1)
	var img *Image
	go func() {
		var err error
		img, err = s.Pull(context.Background(), reg.host+"/test/order:v1", remote.Auth{})
		pulled <- err
	}()
	<-gate.held
	// The layers above it are unpacked and recorded while it waits.
	for deadline := time.Now().Add(guard); ; time.Sleep(5 * time.Millisecond) {
		if rec, _ := countLayers(t, s); rec == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the upper layers were not unpacked while the bottom one waited")
		}
	}
	gate.open()
	if err := <-pulled; err != nil {
		t.Fatal(err)
	}
	assertLayers(t, s, img, layers...)
	for i, id := range img.Layers {
		rec, err := s.meta.layer(id)
		if err != nil {
			t.Fatal(err)
		}
		var parent digest.Digest
		if i > 0 {
			parent = img.Layers[i-1]
		}
		if rec.Parent != parent || rec.DiffID.String() != layers[i].diffID.String() {
			t.Fatalf("layer %d: record %+v, want parent %s", i, rec, parent)
		}
	}
}

// Two pulls of different images that share a layer fetch it once, even
// when the pull that started its download gives up.
func TestConcurrentPullsShareLayers(t *testing.T) {
	reg := newPullRegistry(t)
	base := newTestLayer(t, map[string]string{"base": randomString(t, 50_000)})
	a := newTestLayer(t, map[string]string{"app": "a"})
	b := newTestLayer(t, map[string]string{"app": "b"})
	reg.pushLayers(t, "test/a:v1", base, a)
	reg.pushLayers(t, "test/b:v1", base, b)
	gate := reg.gate(t, base.blob)
	var baseGets atomic.Int64
	h := *reg.blobHook.Load()
	reg.blobHook.Store(ptr(blobHook(func(w http.ResponseWriter, req *http.Request, r http.Handler) {
		if strings.HasSuffix(req.URL.Path, base.blob.String()) {
			baseGets.Add(1)
		}
		h(w, req, r)
	})))
	s := newService(t, t.TempDir())

	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	pulledA := make(chan error, 1)
	go func() {
		_, err := s.Pull(ctxA, reg.host+"/test/a:v1", remote.Auth{})
		pulledA <- err
	}()
	<-gate.held
	pulledB := make(chan *Image, 1)
	go func() {
		img, err := s.Pull(context.Background(), reg.host+"/test/b:v1", remote.Auth{})
		if err != nil {
			t.Error(err)
		}
		pulledB <- img
	}()
	chainID := digest.Digest(base.diffID.String()) // a bottom layer's chain ID is its diff ID
	waitWaiters(t, s, chainID, 2)
	// A gives up; B still needs the layer, so its download goes on.
	cancelA()
	if err := <-pulledA; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled pull = %v", err)
	}
	gate.open()
	img := <-pulledB
	if img == nil {
		t.FailNow()
	}
	assertLayers(t, s, img, base, b)
	if n := baseGets.Load(); n != 1 {
		t.Fatalf("the shared layer was fetched %d times, want once", n)
	}
	if st := s.PullStats(); st.Layers["shared"] != 1 || st.Pulls["failed"].Count != 1 || st.Pulls["ok"].Count != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

func ptr[T any](v T) *T { return &v }

// waitWaiters waits until n pulls wait for the layer's run.
func waitWaiters(t *testing.T, s *Service, chainID digest.Digest, n int) {
	t.Helper()
	for deadline := time.Now().Add(guard); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.layerFlights.mu.Lock()
		c := s.layerFlights.calls[chainID.String()]
		got := 0
		if c != nil {
			got = c.waiters
		}
		s.layerFlights.mu.Unlock()
		if got == n {
			return
		}
	}
	t.Fatalf("never %d pulls waiting for layer %s", n, chainID)
}

// A connection that goes quiet (no RST, no FIN: a dead peer) is cut after
// half the stall timeout and resumed on a fresh one, before the layer's
// stall timeout would fail the pull.
func TestIdleConnectionResumed(t *testing.T) {
	reg := newPullRegistry(t)
	small, big := reg.bigImage(t)
	var hung atomic.Bool
	reg.watchBlob(big.blob, func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		if !hung.CompareAndSwap(false, true) {
			reg.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes()[:rec.Body.Len()/2])
		w.(http.Flusher).Flush()
		<-req.Context().Done() // silent until the client gives up
	})
	s := rangedService(t)
	s.opts.FetchConnections = 1
	s.opts.ProgressTimeout = 2 * time.Second
	img, err := s.Pull(context.Background(), reg.host+"/test/big:v1", remote.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	assertLayers(t, s, img, small, big)
	if st := s.PullStats(); st.Resumed != 1 {
		t.Fatalf("resumed %d requests, want 1", st.Resumed)
	}
}

// memBlob serves ranges of an in-memory blob, as a registry with ranges does.
func memBlob(data []byte, asked *[]string, mu *sync.Mutex) rangeFetcher {
	return func(ctx context.Context, start, end int64) (*remote.BlobPart, error) {
		if end < 0 {
			end = int64(len(data))
		}
		mu.Lock()
		*asked = append(*asked, fmt.Sprintf("%d-%d", start, end))
		mu.Unlock()
		return &remote.BlobPart{Body: io.NopCloser(bytes.NewReader(data[start:end])), Start: start, Ranged: true}, nil
	}
}

// The chunks cover the blob exactly, whether its size is a multiple of the
// chunk or not; a blob under the parallel threshold is one request.
func TestDownloaderChunks(t *testing.T) {
	const chunk = 1000
	for _, size := range []int{4 * chunk, 4*chunk + 1, 2*chunk - 1, 2 * chunk, 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := newService(t, t.TempDir())
			data := []byte(randomString(t, size))
			d := digest.FromBytes(data)
			in, err := s.content.Ingest(d, int64(size))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var asked []string
			var mu sync.Mutex
			_, w := watchProgress(context.Background(), 0, rateLimit{})
			dl := &downloader{fetch: memBlob(data, &asked, &mu), in: in, blob: d, watch: w, resumed: new(atomic.Uint64),
				plan: fetchPlan{chunk: chunk, conns: 3, minParallel: 2 * chunk}}
			if err := dl.run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(in.Reader(context.Background()))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("reassembled %d bytes (%v), want the %d written", len(got), err, size)
			}
			if err := in.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			var want []string
			if size < 2*chunk {
				want = []string{fmt.Sprintf("0-%d", size)}
			} else {
				for off := 0; off < size; off += chunk {
					want = append(want, fmt.Sprintf("%d-%d", off, min(off+chunk, size)))
				}
			}
			slices.Sort(asked)
			slices.Sort(want)
			if !slices.Equal(asked, want) {
				t.Fatalf("asked %v, want %v", asked, want)
			}
		})
	}
}
