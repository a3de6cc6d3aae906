package remote

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// testRegistry is an in-process registry on loopback that counts requests.
type testRegistry struct {
	*httptest.Server
	requests atomic.Int64
	host     string
}

func newRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *testRegistry {
	t.Helper()
	r := &testRegistry{}
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	r.host = strings.TrimPrefix(r.URL, "http://")
	return r
}

func (r *testRegistry) push(t *testing.T, repoTag string, img v1.Image) {
	t.Helper()
	ref, err := name.ParseReference(r.host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcr.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

func randomImage(t *testing.T, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(1024, layers)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestResolveAndFetch(t *testing.T) {
	reg := newRegistry(t, nil)
	img := randomImage(t, 3)
	reg.push(t, "lib/app:v1", img)
	r, err := NewClient(nil).Resolve(context.Background(), reg.host+"/lib/app:v1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	cfgDigest, _ := img.ConfigName()
	if r.ConfigDigest.String() != cfgDigest.String() || len(r.Layers) != 3 || r.Endpoint != reg.host {
		t.Fatalf("resolved %+v", r)
	}
	if r.Digest != r.ManifestDigest {
		t.Fatalf("single-platform digest %s != manifest %s", r.Digest, r.ManifestDigest)
	}
	rc, err := r.Fetch(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != r.Layers[1].Size {
		t.Fatalf("fetched %d bytes (%v), want %d", n, err, r.Layers[1].Size)
	}
}

func TestResolveIndexPicksPlatform(t *testing.T) {
	reg := newRegistry(t, nil)
	amdImg, armImg := randomImage(t, 1), randomImage(t, 2)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: armImg, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
		mutate.IndexAddendum{Add: amdImg, Descriptor: v1.Descriptor{Platform: &amd64}},
	)
	ref, _ := name.ParseReference(reg.host + "/multi:1")
	if err := ggcr.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	c := NewClient(nil)
	r, err := c.Resolve(context.Background(), reg.host+"/multi:1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := amdImg.ConfigName()
	idxDigest, _ := idx.Digest()
	if r.ConfigDigest.String() != want.String() || r.Digest.String() != idxDigest.String() || r.Digest == r.ManifestDigest {
		t.Fatalf("picked %s (top %s), want config %s under index %s", r.ConfigDigest, r.Digest, want, idxDigest)
	}
	if _, err := c.Resolve(context.Background(), reg.host+"/multi:1", v1.Platform{OS: "linux", Architecture: "s390x"}, Auth{}); err == nil {
		t.Fatal("resolved a platform the index lacks")
	}
}

func TestMirrors(t *testing.T) {
	empty, full, upstream := newRegistry(t, nil), newRegistry(t, nil), newRegistry(t, nil)
	full.push(t, "e2e/busybox:1", randomImage(t, 1))
	hosts := Hosts{"registry.example": {Mirrors: []Endpoint{{URL: empty.URL}, {URL: full.URL}}}}
	r, err := NewClient(hosts).Resolve(context.Background(), "registry.example/e2e/busybox:1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Endpoint != full.host || empty.requests.Load() == 0 {
		t.Fatalf("served by %s; first mirror asked %d times", r.Endpoint, empty.requests.Load())
	}

	// mirrors_only: when no mirror has it, the host is never contacted.
	hosts = Hosts{upstream.host: {Mirrors: []Endpoint{{URL: empty.URL}}, MirrorsOnly: true}}
	upstream.push(t, "only/upstream:1", randomImage(t, 1))
	before := upstream.requests.Load()
	_, err = NewClient(hosts).Resolve(context.Background(), upstream.host+"/only/upstream:1", amd64, Auth{})
	if !errdefs.IsNotFound(err) {
		t.Fatalf("mirrors_only resolve = %v, want NotFound", err)
	}
	if upstream.requests.Load() != before {
		t.Fatal("mirrors_only contacted the host")
	}
	// Without mirrors_only, the host is the fallback.
	hosts = Hosts{upstream.host: {Mirrors: []Endpoint{{URL: empty.URL}}}}
	if r, err := NewClient(hosts).Resolve(context.Background(), upstream.host+"/only/upstream:1", amd64, Auth{}); err != nil || r.Endpoint != upstream.host {
		t.Fatalf("fallback to host: %v, %v", r, err)
	}
}

func TestErrors(t *testing.T) {
	reg := newRegistry(t, nil)
	reg.push(t, "app:v1", randomImage(t, 1))
	c := NewClient(nil)
	ctx := context.Background()
	if _, err := c.Resolve(ctx, reg.host+"/app:nope", amd64, Auth{}); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "app:nope") {
		t.Fatalf("missing tag: %v", err)
	}
	if _, err := c.Resolve(ctx, reg.host+"/nothing:v1", amd64, Auth{}); !errdefs.IsNotFound(err) {
		t.Fatalf("missing repo: %v", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(closed.URL, "http://")
	closed.Close()
	_, err := c.Resolve(ctx, addr+"/app:v1", amd64, Auth{})
	if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "registry unreachable") {
		t.Fatalf("closed port: %v, want Unavailable", err)
	}
}

func TestBasicAuth(t *testing.T) {
	reg := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "secret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	ref, _ := name.ParseReference(reg.host + "/private:1")
	img := randomImage(t, 1)
	if err := ggcr.Write(ref, img, ggcr.WithAuth(Auth{Username: "alice", Password: "secret"}.authenticator())); err != nil {
		t.Fatal(err)
	}
	c := NewClient(nil)
	if _, err := c.Resolve(context.Background(), reg.host+"/private:1", amd64, Auth{Username: "alice", Password: "secret"}); err != nil {
		t.Fatalf("right credentials: %v", err)
	}
	if _, err := c.Resolve(context.Background(), reg.host+"/private:1", amd64, Auth{Auth: "YWxpY2U6c2VjcmV0"}); err != nil {
		t.Fatalf("right credentials as auth: %v", err)
	}
	_, err := c.Resolve(context.Background(), reg.host+"/private:1", amd64, Auth{Username: "alice", Password: "wrong"})
	if !errdefs.IsUnauthorized(err) || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("wrong credentials: %v, want unauthenticated", err)
	}
}

func TestBearerTokenFlow(t *testing.T) {
	var tokenRequests atomic.Int64
	var reg *testRegistry
	reg = newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/token" { // the realm lives on the registry's own host
				tokenRequests.Add(1)
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
	if _, err := NewClient(nil).Resolve(context.Background(), reg.host+"/tok:1", amd64, Auth{}); err != nil {
		t.Fatalf("anonymous bearer flow: %v", err)
	}
	if tokenRequests.Load() == 0 {
		t.Fatal("no token was fetched")
	}
}

func TestFetchDetectsCorruptBlob(t *testing.T) {
	corrupt := atomic.Bool{}
	reg := newRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if corrupt.Load() && strings.Contains(r.URL.Path, "/blobs/") {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				body := rec.Body.Bytes()
				if len(body) > 0 {
					body[len(body)/2] ^= 0xff
				}
				for k, v := range rec.Header() {
					w.Header()[k] = v
				}
				w.WriteHeader(rec.Code)
				w.Write(body)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	reg.push(t, "bad:1", randomImage(t, 1))
	r, err := NewClient(nil).Resolve(context.Background(), reg.host+"/bad:1", amd64, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	corrupt.Store(true)
	rc, err := r.Fetch(context.Background(), 0)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("corrupt blob read without error")
	}
}

func TestPlainHTTPRules(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1:5000": true, "localhost:5000": true, "[::1]:5000": true, "10.0.0.1:5000": false, "registry.k8s.io": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
	eps, _ := Hosts{"10.0.0.1:5000": {}}.endpoints("10.0.0.1:5000")
	if eps[0].plain {
		t.Fatal("private address gets plain HTTP without insecure")
	}
	eps, _ = Hosts{"10.0.0.1:5000": {Insecure: true}}.endpoints("10.0.0.1:5000")
	if !eps[0].plain {
		t.Fatal("insecure host denied plain HTTP")
	}
	rt := refusePlainHTTP{http.DefaultTransport}
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
	if _, err := rt.RoundTrip(req); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Fatalf("plain HTTP to a private address: %v", err)
	}
}

func TestLoadHostsDir(t *testing.T) {
	dir := t.TempDir()
	write := func(host, data string) {
		os.MkdirAll(filepath.Join(dir, host), 0o755)
		os.WriteFile(filepath.Join(dir, host, "hosts.toml"), []byte(data), 0o644)
	}
	write("docker.io", `server = "https://registry-1.docker.io"
[host."http://127.0.0.1:5000"]
  capabilities = ["pull", "resolve"]
[host."https://push-only.example"]
  capabilities = ["push"]
[host."https://mirror.example"]
  capabilities = ["pull"]
  skip_verify = true
  ca = ["/etc/certs/mirror.pem"]
`)
	write("gcr.io", "skip_verify = true\nca = \"/etc/certs/gcr.pem\"\n")
	hosts, err := LoadHostsDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d := hosts["docker.io"]
	if len(d.Mirrors) != 3 || d.Mirrors[0].URL != "http://127.0.0.1:5000" || d.Mirrors[1].URL != "https://mirror.example" ||
		!d.Mirrors[1].SkipVerify || d.Mirrors[1].CAFile != "/etc/certs/mirror.pem" || d.Mirrors[2].URL != "https://registry-1.docker.io" || !d.MirrorsOnly {
		t.Fatalf("docker.io = %+v", d)
	}
	if g := hosts["gcr.io"]; !g.Insecure || g.CAFile != "/etc/certs/gcr.pem" || len(g.Mirrors) != 0 {
		t.Fatalf("gcr.io = %+v", g)
	}

	for name, bad := range map[string]string{
		"unknown key": "colour = \"red\"\n",
		"bad ca":      "ca = 5\n",
		"bad mirror":  "[host.\"ftp://x\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := t.TempDir()
			os.MkdirAll(filepath.Join(d, "h.example"), 0o755)
			os.WriteFile(filepath.Join(d, "h.example", "hosts.toml"), []byte(bad), 0o644)
			if _, err := LoadHostsDir(d); err == nil || !strings.Contains(err.Error(), "hosts.toml") {
				t.Fatalf("LoadHostsDir = %v, want an error naming the file", err)
			}
		})
	}
	if h, err := LoadHostsDir(filepath.Join(dir, "absent")); err != nil || len(h) != 0 {
		t.Fatalf("missing dir: %v, %v", h, err)
	}
}

func TestSchema1Rejected(t *testing.T) {
	reg := newRegistry(t, nil)
	manifest := `{"schemaVersion":1,"name":"old","tag":"v1","architecture":"amd64","fsLayers":[],"history":[]}`
	req, _ := http.NewRequest(http.MethodPut, reg.URL+"/v2/old/manifests/v1", strings.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.docker.distribution.manifest.v1+prettyjws")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push schema 1: %s", resp.Status)
	}
	_, err = NewClient(nil).Resolve(context.Background(), reg.host+"/old:v1", amd64, Auth{})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "schema 1") {
		t.Fatalf("schema 1 image = %v, want a FailedPrecondition error naming schema 1", err)
	}
}
