package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-cri/berth/images/remote"
)

// pullRegistry is an in-process registry whose blob GETs can be counted,
// corrupted or stalled.
type pullRegistry struct {
	srv       *httptest.Server
	host      string
	blobGets  atomic.Int64
	corrupt   atomic.Bool
	truncate  atomic.Bool
	stall     atomic.Bool
	slow      atomic.Bool
	unstalled chan struct{}
	// blobHook, when set, serves every blob GET (reg is the registry).
	blobHook atomic.Pointer[blobHook]
}

type blobHook func(w http.ResponseWriter, req *http.Request, reg http.Handler)

func newPullRegistry(t *testing.T) *pullRegistry {
	t.Helper()
	r := &pullRegistry{unstalled: make(chan struct{})}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			r.blobGets.Add(1)
			if h := r.blobHook.Load(); h != nil {
				(*h)(w, req, reg)
				return
			}
			if r.stall.Load() {
				select {
				case <-r.unstalled:
				case <-req.Context().Done():
				}
				return
			}
			if r.slow.Load() {
				time.Sleep(200 * time.Millisecond)
			}
			if r.corrupt.Load() || r.truncate.Load() {
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, req)
				body := rec.Body.Bytes()
				if len(body) < 1024 { // the config: spoil only layers
					w.WriteHeader(rec.Code)
					w.Write(body)
					return
				}
				if r.truncate.Load() {
					body = body[:len(body)/2]
				} else {
					body[len(body)-1] ^= 0xff
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(func() { close(r.unstalled); r.srv.Close() })
	r.host = strings.TrimPrefix(r.srv.URL, "http://")
	return r
}

func tarLayer(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, body := range files {
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)})
		tw.Write([]byte(body))
	}
	tw.Close()
	return buf.Bytes()
}

// pushImage builds an image of gzip, zstd and uncompressed layers and pushes it.
func (r *pullRegistry) pushImage(t *testing.T, repoTag, marker string) v1.Image {
	t.Helper()
	gz := tarLayer(t, map[string]string{"etc/os-release": "berth test " + marker, "bin/tool": strings.Repeat("x", 100000)})
	zst := tarLayer(t, map[string]string{"usr/share/zstd": "zstd layer " + marker})
	raw := tarLayer(t, map[string]string{"raw": "uncompressed " + marker})
	l1, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(gz)), nil })
	if err != nil {
		t.Fatal(err)
	}
	l2, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(zst)), nil },
		tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	if err != nil {
		t.Fatal(err)
	}
	l3 := static.NewLayer(raw, types.OCIUncompressedLayer)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), l1, l2, l3)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{User: "1002", Cmd: []string{"sh"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(r.host + "/" + repoTag)
	if err := ggcr.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPull(t *testing.T) {
	reg := newPullRegistry(t)
	pushed := reg.pushImage(t, "test/app:v1", "a")
	s := newService(t, t.TempDir())
	ctx := context.Background()
	img, err := s.Pull(ctx, reg.host+"/test/app:v1", remote.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := pushed.ConfigName()
	if img.ID != cfg.String() || len(img.Layers) != 3 || img.Config.User != "1002" || img.Size == 0 {
		t.Fatalf("image = %+v", img)
	}
	if len(img.RepoTags) != 1 || img.RepoTags[0] != reg.host+"/test/app:v1" || len(img.RepoDigests) != 1 {
		t.Fatalf("names = %v %v", img.RepoTags, img.RepoDigests)
	}
	top := s.layerDir(img.Layers[0])
	if b, err := os.ReadFile(filepath.Join(top, "etc/os-release")); err != nil || string(b) != "berth test a" {
		t.Fatalf("gzip layer content: %q, %v", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.layerDir(img.Layers[1]), "usr/share/zstd")); string(b) != "zstd layer a" {
		t.Fatalf("zstd layer content: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(s.layerDir(img.Layers[2]), "raw")); string(b) != "uncompressed a" {
		t.Fatalf("uncompressed layer content: %q", b)
	}
	for _, ref := range []string{img.RepoDigests[0], img.ID, img.ID[7:19]} {
		if got, err := s.Get(ctx, ref); err != nil || got.ID != img.ID {
			t.Fatalf("Get(%s) = %v, %v", ref, got, err)
		}
	}

	// Pulling again fetches no blob.
	gets := reg.blobGets.Load()
	if _, err := s.Pull(ctx, reg.host+"/test/app:v1", remote.Auth{}); err != nil {
		t.Fatal(err)
	}
	if reg.blobGets.Load() != gets {
		t.Fatalf("re-pull fetched %d blobs", reg.blobGets.Load()-gets)
	}

	// A restart keeps everything.
	s.Close()
	s2 := newService(t, s.opts.Root)
	if got, err := s2.Get(ctx, reg.host+"/test/app:v1"); err != nil || got.ID != img.ID {
		t.Fatalf("after restart: %v, %v", got, err)
	}
	if _, err := os.Stat(top); err != nil {
		t.Fatalf("layer gone after restart: %v", err)
	}
}

func TestConcurrentPullsShareOneDownload(t *testing.T) {
	reg := newPullRegistry(t)
	reg.pushImage(t, "test/app:v1", "b")
	reg.slow.Store(true)
	s := newService(t, t.TempDir())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// 3 layers + 1 config blob, each fetched once.
	if n := reg.blobGets.Load(); n != 4 {
		t.Fatalf("%d blob GETs for 4 concurrent pulls, want 4", n)
	}
}

// assertNothingStored checks what a failed pull leaves: no image, no half
// layer (complete layers stay recorded for a retry, until GC), no download.
func assertNothingStored(t *testing.T, s *Service) {
	t.Helper()
	imgs, _ := s.List(context.Background())
	layers, _ := s.meta.layers()
	entries, _ := os.ReadDir(s.layersDir)
	if len(imgs) != 0 || len(layers) != len(entries) {
		t.Fatalf("left behind: %d images, %d layer records, %d layer dirs", len(imgs), len(layers), len(entries))
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpLayerPrefix) {
			t.Fatalf("half layer left: %s", e.Name())
		}
	}
	if err := s.gc(context.Background()); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(s.layersDir); len(entries) != 0 {
		t.Fatalf("GC left %d layer dirs", len(entries))
	}
	ingest, _ := os.ReadDir(filepath.Join(s.opts.Root, "ingest"))
	if len(ingest) != 0 {
		t.Fatalf("ingest left behind: %d files", len(ingest))
	}
}

func TestPullBadBlobStoresNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		flag func(*pullRegistry) *atomic.Bool
	}{
		{"corrupt", func(r *pullRegistry) *atomic.Bool { return &r.corrupt }},
		{"truncated", func(r *pullRegistry) *atomic.Bool { return &r.truncate }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := newPullRegistry(t)
			reg.pushImage(t, "test/app:v1", "c")
			s := newService(t, t.TempDir())
			tt.flag(reg).Store(true)
			if _, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{}); err == nil {
				t.Fatal("pull of a bad image succeeded")
			}
			assertNothingStored(t, s)
		})
	}
}

func TestPullCancelAndStall(t *testing.T) {
	reg := newPullRegistry(t)
	reg.pushImage(t, "test/app:v1", "d")
	reg.stall.Store(true)

	s := newService(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := s.Pull(ctx, reg.host+"/test/app:v1", remote.Auth{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled pull = %v", err)
	}
	waitPullsDone(t, s)
	assertNothingStored(t, s)

	s.opts.ProgressTimeout = 200 * time.Millisecond
	_, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{})
	if err == nil || !strings.Contains(err.Error(), "no progress for 200ms") {
		t.Fatalf("stalled pull = %v, want the progress timeout", err)
	}
	assertNothingStored(t, s)
}

// waitPullsDone waits until no shared pull is running (a caller that gave up
// returns before the pull it abandoned has cleaned up).
func waitPullsDone(t *testing.T, s *Service) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		s.pulls.mu.Lock()
		n := len(s.pulls.calls)
		s.pulls.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("pull still running")
}

func TestPullErrors(t *testing.T) {
	reg := newPullRegistry(t)
	s := newService(t, t.TempDir())
	_, err := s.Pull(context.Background(), reg.host+"/test/none:v1", remote.Auth{})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "test/none:v1") {
		t.Fatalf("missing image = %v", err)
	}
	if _, err := s.Pull(context.Background(), "Bad Name", remote.Auth{}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad name = %v", err)
	}
}

func TestRemovePulledImageFreesEverything(t *testing.T) {
	reg := newPullRegistry(t)
	reg.pushImage(t, "test/app:v1", "e")
	s := newService(t, t.TempDir())
	img, err := s.Pull(context.Background(), reg.host+"/test/app:v1", remote.Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(context.Background(), img.ID); err != nil {
		t.Fatal(err)
	}
	assertNothingStored(t, s)
	if b, n := s.content.Usage(); b != 0 || n != 0 {
		t.Fatalf("blobs left: %d bytes, %d", b, n)
	}
}
