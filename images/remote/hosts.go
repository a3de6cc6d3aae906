package remote

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Host holds the settings of one registry host.
type Host struct {
	// Mirrors are tried in order before the host itself.
	Mirrors []Endpoint
	// MirrorsOnly: never contact the host itself.
	MirrorsOnly bool
	// Insecure allows plain HTTP and unverified TLS for the host.
	Insecure bool
	// CAFile is a PEM bundle trusted for the host.
	CAFile string
}

// Endpoint is a mirror: a URL ("http://127.0.0.1:5000", "https://mirror/prefix")
// with its own TLS settings.
type Endpoint struct {
	URL        string
	SkipVerify bool
	CAFile     string
}

// Hosts maps a registry host[:port] (as in image references) to its settings.
type Hosts map[string]Host

// endpoint is one place to try: a registry host and how to reach it.
type endpoint struct {
	host     string // host[:port]
	plain    bool   // plain HTTP
	insecure bool   // skip TLS verification
	caFile   string
	mirror   bool
}

// endpoints lists where to look for an image of registry host, in order.
func (h Hosts) endpoints(host string) ([]endpoint, error) {
	cfg := h[host]
	var out []endpoint
	for _, m := range cfg.Mirrors {
		e, err := parseMirror(m)
		if err != nil {
			return nil, fmt.Errorf("registry %s: %w", host, err)
		}
		out = append(out, e)
	}
	if !cfg.MirrorsOnly || len(out) == 0 {
		out = append(out, endpoint{host: host, plain: cfg.Insecure || isLoopback(host), insecure: cfg.Insecure, caFile: cfg.CAFile})
	}
	return out, nil
}

func parseMirror(m Endpoint) (endpoint, error) {
	scheme, rest, ok := strings.Cut(m.URL, "://")
	if !ok || (scheme != "http" && scheme != "https") || rest == "" {
		return endpoint{}, fmt.Errorf("mirror %q is not an http:// or https:// URL", m.URL)
	}
	host, path, _ := strings.Cut(rest, "/")
	if p := strings.Trim(path, "/"); p != "" && p != "v2" {
		return endpoint{}, fmt.Errorf("mirror %q: path prefixes are not supported", m.URL)
	}
	return endpoint{host: host, plain: scheme == "http", insecure: m.SkipVerify, caFile: m.CAFile, mirror: true}, nil
}

// isLoopback reports whether a registry host[:port] is on loopback.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// transports caches one transport per TLS setting, so connections are reused
// across pulls.
type transports struct {
	mu sync.Mutex
	m  map[string]http.RoundTripper
}

func (t *transports) get(e endpoint) (http.RoundTripper, error) {
	key := fmt.Sprintf("%v|%v|%s", e.plain, e.insecure, e.caFile)
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt, ok := t.m[key]; ok {
		return rt, nil
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.insecure} //nolint:gosec // only where configured insecure
	if e.caFile != "" {
		pool, err := loadCA(e.caFile)
		if err != nil {
			return nil, err
		}
		tlsConfig.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		TLSClientConfig:       tlsConfig,
	}
	var rt http.RoundTripper = tr
	if !e.plain {
		rt = refusePlainHTTP{tr}
	}
	if t.m == nil {
		t.m = map[string]http.RoundTripper{}
	}
	t.m[key] = rt
	return rt, nil
}

func loadCA(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}

// refusePlainHTTP stops go-containerregistry from falling back to plain HTTP
// for hosts that are neither loopback nor configured insecure (it would do so
// for private addresses on its own). Redirects to loopback blob stores are allowed.
type refusePlainHTTP struct{ next http.RoundTripper }

func (r refusePlainHTTP) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !isLoopback(req.URL.Host) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: mark the registry insecure to allow it", req.URL.Host)
	}
	return r.next.RoundTrip(req)
}
