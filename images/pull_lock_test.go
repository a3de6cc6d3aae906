package images

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"

	"github.com/berth-cri/berth/images/remote"
)

// guard bounds a wait that only a bug makes long; nothing is timed.
const guard = 30 * time.Second

// blobGate makes the registry send half of one blob, then wait for release.
type blobGate struct {
	held    chan struct{} // closed when the blob is half sent
	release chan struct{}
	once    sync.Once
}

func (r *pullRegistry) gate(t *testing.T, blob v1.Hash) *blobGate {
	g := &blobGate{held: make(chan struct{}), release: make(chan struct{})}
	var heldOnce sync.Once
	h := blobHook(func(w http.ResponseWriter, req *http.Request, reg http.Handler) {
		if !strings.HasSuffix(req.URL.Path, "/blobs/"+blob.String()) {
			reg.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.WriteHeader(rec.Code)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		heldOnce.Do(func() { close(g.held) })
		select {
		case <-g.release:
		case <-req.Context().Done():
			return
		}
		w.Write(body[len(body)/2:])
	})
	r.blobHook.Store(&h)
	// Registered after the registry's cleanup, so it runs first: a failed
	// test must not leave the server waiting on its handler.
	t.Cleanup(g.open)
	return g
}

func (g *blobGate) open() { g.once.Do(func() { close(g.release) }) }

// within runs fn and fails the test if it does not return within guard.
func within(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(guard):
		t.Fatalf("%s did not return within %s: blocked behind the pull", what, guard)
	}
}

// pulledContent is what a pull of img stores: layer chain IDs and blobs.
func pulledContent(t *testing.T, img v1.Image) (chainIDs, layerBlobs []digest.Digest, manifest, config digest.Digest) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var diffIDs []digest.Digest
	for _, l := range layers {
		d, _ := l.DiffID()
		b, _ := l.Digest()
		diffIDs = append(diffIDs, digest.Digest(d.String()))
		layerBlobs = append(layerBlobs, digest.Digest(b.String()))
	}
	m, _ := img.Digest()
	c, _ := img.ConfigName()
	return identity.ChainIDs(diffIDs), layerBlobs, digest.Digest(m.String()), digest.Digest(c.String())
}

// A pull blocked in the middle of a download holds no lock: RemoveImage (and
// its GC) and PrepareSnapshot go on; GC keeps what the pull stored so far.
func TestPullHoldsNoLockWhileDownloading(t *testing.T) {
	reg := newPullRegistry(t)
	pushed := reg.pushImage(t, "test/app:v1", "lock")
	chainIDs, blobs, manifest, config := pulledContent(t, pushed)
	layers, _ := pushed.Layers()
	last, _ := layers[len(layers)-1].Digest()
	gate := reg.gate(t, last)

	s := newService(t, t.TempDir())
	// One layer at a time: when the last blob blocks, the others are stored.
	s.opts.MaxConcurrentDownloads = 1
	existing := addImage(t, s, "existing", []string{"docker.io/library/existing:1"}, "base-e")
	victim := addImage(t, s, "victim", []string{"docker.io/library/victim:1"}, "base-v")
	ctx := context.Background()

	type result struct {
		img *Image
		err error
	}
	pulled := make(chan result, 1)
	go func() {
		img, err := s.Pull(ctx, reg.host+"/test/app:v1", remote.Auth{})
		pulled <- result{img, err}
	}()
	select {
	case <-gate.held:
	case r := <-pulled:
		t.Fatalf("pull returned before its last blob: %+v", r)
	case <-time.After(guard):
		t.Fatal("the pull never reached its last blob")
	}

	within(t, "RemoveImage of another image", func() error { return s.Remove(ctx, victim.ID) })
	within(t, "PrepareSnapshot of an existing image", func() error {
		_, err := s.PrepareSnapshot(ctx, "ctr1", existing.ID, false)
		return err
	})
	if _, err := os.Stat(s.layerDir(victim.Layers[0])); !os.IsNotExist(err) {
		t.Fatalf("GC did not run: the removed image's layer is still there (%v)", err)
	}
	// What the pull stored before blocking survived that GC.
	for _, id := range chainIDs[:len(chainIDs)-1] {
		if _, err := s.meta.layer(id); err != nil {
			t.Fatalf("GC dropped the record of a layer the pull stored: %v", err)
		}
		if _, err := os.Stat(s.layerDir(id)); err != nil {
			t.Fatalf("GC removed a layer the pull stored: %v", err)
		}
	}
	for _, d := range append([]digest.Digest{manifest, config}, blobs[:len(blobs)-1]...) {
		if !s.content.Has(d) {
			t.Fatalf("GC deleted blob %s that the pull stored", d)
		}
	}

	gate.open()
	var r result
	select {
	case r = <-pulled:
	case <-time.After(guard):
		t.Fatal("the pull did not finish once released")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.img.ID != config.String() || !slices.Equal(r.img.Layers, chainIDs) {
		t.Fatalf("pulled %+v", r.img)
	}
	// The image record now keeps it all, with no lease left.
	if n := len(s.leases.held()); n != 0 {
		t.Fatalf("%d leases left after the pull", n)
	}
	if err := s.gc(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range chainIDs {
		if _, err := os.Stat(s.layerDir(id)); err != nil {
			t.Fatalf("layer of the pulled image: %v", err)
		}
	}
	for _, d := range append([]digest.Digest{manifest, config}, blobs...) {
		if !s.content.Has(d) {
			t.Fatalf("blob %s of the pulled image is missing", d)
		}
	}
	b, err := os.ReadFile(filepath.Join(s.layerDir(chainIDs[0]), "etc/os-release"))
	if err != nil || string(b) != "berth test lock" {
		t.Fatalf("layer content = %q, %v", b, err)
	}
}
