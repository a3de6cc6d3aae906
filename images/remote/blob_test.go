package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// layerBytes returns layer i's compressed blob as the registry holds it.
func layerBytes(t *testing.T, r *Resolved, i int) []byte {
	t.Helper()
	rc, err := r.Fetch(context.Background(), i)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readPart(t *testing.T, p *BlobPart) []byte {
	t.Helper()
	defer p.Body.Close()
	b, err := io.ReadAll(p.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetchRange(t *testing.T) {
	var ranges atomic.Int64
	reg := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") != "" {
				ranges.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	})
	reg.push(t, "lib/app:v1", randomImage(t, 2))
	r, err := NewClient(nil).Resolve(context.Background(), reg.host+"/lib/app:v1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	whole := layerBytes(t, r, 1)
	ctx := context.Background()

	p, err := r.FetchRange(ctx, 1, 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Ranged || p.Start != 100 || !bytes.Equal(readPart(t, p), whole[100:300]) {
		t.Fatalf("range 100-300: ranged %v from %d", p.Ranged, p.Start)
	}
	// To the end of the blob.
	p, err = r.FetchRange(ctx, 1, 1000, -1)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Ranged || !bytes.Equal(readPart(t, p), whole[1000:]) {
		t.Fatal("range to the end differs")
	}
	// The whole blob: a plain GET, no Range header.
	before := ranges.Load()
	p, err = r.FetchRange(ctx, 1, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ranged || !bytes.Equal(readPart(t, p), whole) || ranges.Load() != before {
		t.Fatal("a whole-blob fetch was ranged or differs")
	}
	if _, err := r.FetchRange(ctx, 1, 10, int64(len(whole))+1); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("range past the end = %v", err)
	}
}

func TestFetchRangeIgnored(t *testing.T) {
	reg := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Range") // a registry that serves no ranges: 200 and the whole blob
			next.ServeHTTP(w, r)
		})
	})
	reg.push(t, "lib/app:v1", randomImage(t, 1))
	r, err := NewClient(nil).Resolve(context.Background(), reg.host+"/lib/app:v1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	whole := layerBytes(t, r, 0)
	p, err := r.FetchRange(context.Background(), 0, 100, 300)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ranged || p.Start != 0 || !bytes.Equal(readPart(t, p), whole) {
		t.Fatalf("ignored range: ranged %v from %d, want the whole blob from 0", p.Ranged, p.Start)
	}
}

func TestFetchRangeChecksFraming(t *testing.T) {
	for _, tt := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		want  func(error) bool
	}{
		{"wrong start", func(w http.ResponseWriter) {
			w.Header().Set("Content-Range", "bytes 0-199/1024")
			w.WriteHeader(http.StatusPartialContent)
		}, errdefs.IsDataLoss},
		{"wrong total", func(w http.ResponseWriter) {
			w.Header().Set("Content-Range", "bytes 100-299/5000")
			w.WriteHeader(http.StatusPartialContent)
		}, errdefs.IsDataLoss},
		{"no content range", func(w http.ResponseWriter) { w.WriteHeader(http.StatusPartialContent) }, errdefs.IsDataLoss},
		{"wrong length", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "7")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("1234567"))
		}, errdefs.IsDataLoss},
		{"unavailable", func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, Retryable},
		{"bad range", func(w http.ResponseWriter) { w.WriteHeader(http.StatusRequestedRangeNotSatisfiable) }, func(err error) bool {
			var terr *transport.Error
			return errors.As(err, &terr) && !Retryable(err)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var armed atomic.Bool
			reg := newRegistry(t, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if armed.Load() && strings.Contains(r.URL.Path, "/blobs/") {
						tt.serve(w)
						return
					}
					next.ServeHTTP(w, r)
				})
			})
			reg.push(t, "lib/app:v1", randomImage(t, 1))
			r, err := NewClient(nil).Resolve(context.Background(), reg.host+"/lib/app:v1", amd64, Auth{})
			if err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			start := int64(100)
			if tt.name == "wrong length" {
				start = 0
			}
			_, err = r.FetchRange(context.Background(), 0, start, 300)
			if tt.name == "wrong length" {
				_, err = r.FetchRange(context.Background(), 0, 0, -1)
			}
			if err == nil || !tt.want(err) {
				t.Fatalf("FetchRange = %v", err)
			}
		})
	}
}

func TestFetchRangeBearer(t *testing.T) {
	var reg *testRegistry
	reg = newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" {
				w.Write([]byte(`{"token":"t0k3n"}`))
				return
			}
			if r.Header.Get("Authorization") != "Bearer t0k3n" && r.Method == http.MethodGet {
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+reg.URL+`/token",service="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	reg.push(t, "tok:1", randomImage(t, 1))
	r, err := NewClient(nil).Resolve(context.Background(), reg.host+"/tok:1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.FetchRange(context.Background(), 0, 10, 20)
	if err != nil {
		t.Fatalf("ranged fetch with a bearer token: %v", err)
	}
	if got := readPart(t, p); len(got) != 10 {
		t.Fatalf("got %d bytes", len(got))
	}
}
