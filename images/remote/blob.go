package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// BlobPart is a registry's answer to a request for part of a layer blob.
type BlobPart struct {
	// Body holds the blob's bytes from Start on: the range asked for (it
	// may hold less, never more), or the whole blob when the registry
	// ignored the range (then Start is 0 and Ranged false).
	Body   io.ReadCloser
	Start  int64
	Ranged bool
}

// FetchRange asks the endpoint that served the manifest for bytes
// [start, end) of layer i's blob; end < 0 means to its end, and start 0
// with end < 0 is a plain GET of the whole blob. Nothing is verified here
// but the framing (the status, Content-Range and Content-Length against the
// manifest's size): the caller hashes the bytes it assembles. A registry
// that does not serve ranges answers with the whole blob, which the caller
// must skip into or use as its one stream; "Accept-Ranges" is not trusted
// either way, only the answer.
func (r *Resolved) FetchRange(ctx context.Context, i int, start, end int64) (*BlobPart, error) {
	if i < 0 || i >= len(r.Layers) {
		return nil, fmt.Errorf("layer %d of %d: %w", i, len(r.Layers), errdefs.ErrInvalidArgument)
	}
	l := r.Layers[i]
	if start < 0 || (end >= 0 && end <= start) || (end > l.Size) {
		return nil, fmt.Errorf("blob %s: bad range %d-%d of %d bytes: %w", l.Digest, start, end, l.Size, errdefs.ErrInvalidArgument)
	}
	client, err := r.blobs.client(ctx)
	if err != nil {
		return nil, classify(string(l.Digest), []error{err})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.blobs.url(string(l.Digest)), nil)
	if err != nil {
		return nil, err
	}
	ranged := start > 0 || end >= 0
	if ranged {
		last := l.Size - 1
		if end >= 0 {
			last = end - 1
		}
		// Both ends: some registries (go-containerregistry's own) take no
		// open-ended range.
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, last))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err // the connection's error: a retry may do better
	}
	part, err := checkPart(resp, l, start, ranged)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	return part, nil
}

// checkPart checks the framing of a blob response.
func checkPart(resp *http.Response, l Layer, start int64, ranged bool) (*BlobPart, error) {
	switch {
	case resp.StatusCode == http.StatusPartialContent && ranged:
		first, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return nil, fmt.Errorf("blob %s: %v: %w", l.Digest, err, errdefs.ErrDataLoss)
		}
		if first != start || last >= l.Size || (total >= 0 && total != l.Size) {
			return nil, fmt.Errorf("blob %s: asked for bytes from %d of %d, the registry sent %d-%d/%d: %w",
				l.Digest, start, l.Size, first, last, total, errdefs.ErrDataLoss)
		}
		return &BlobPart{Body: resp.Body, Start: first, Ranged: true}, nil
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != l.Size {
			return nil, fmt.Errorf("blob %s: the registry sends %d bytes, the manifest says %d: %w",
				l.Digest, resp.ContentLength, l.Size, errdefs.ErrDataLoss)
		}
		return &BlobPart{Body: resp.Body}, nil
	}
	return nil, classify(string(l.Digest), []error{transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)})
}

// parseContentRange parses "bytes first-last/total" (total may be "*": -1).
func parseContentRange(v string) (first, last, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("partial content without a byte Content-Range (%q)", v)
	}
	rng, size, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	total = -1
	var err3 error
	if size != "*" {
		total, err3 = strconv.ParseInt(size, 10, 64)
	}
	if err := errors.Join(err1, err2, err3); err != nil || first < 0 || last < first {
		return 0, 0, 0, fmt.Errorf("bad Content-Range %q", v)
	}
	return first, last, total, nil
}

// Retryable tells whether a failed blob request may do better when sent
// again: a dropped or refused connection, a timeout, a 5xx, 408 or 429.
// A 4xx, a range the registry got wrong, a cancelled context are final.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode >= 500 || terr.StatusCode == http.StatusRequestTimeout || terr.StatusCode == http.StatusTooManyRequests
	}
	return !errdefs.IsDataLoss(err) && !errdefs.IsInvalidArgument(err) && !errdefs.IsNotFound(err) &&
		!errdefs.IsUnauthorized(err) && !errdefs.IsPermissionDenied(err)
}

// blobClient makes blob requests to the endpoint that served the manifest,
// with the same credentials; its authenticated client (a ping and a token
// exchange) is made on first use and kept for the pull.
type blobClient struct {
	repo name.Repository
	rt   http.RoundTripper
	auth authn.Authenticator

	mu sync.Mutex
	c  *http.Client
}

func (b *blobClient) client(ctx context.Context) (*http.Client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.c != nil {
		return b.c, nil
	}
	rt, err := transport.NewWithContext(ctx, b.repo.Registry, b.auth, b.rt, []string{b.repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err // not kept: a later call tries again
	}
	b.c = &http.Client{Transport: rt}
	return b.c, nil
}

func (b *blobClient) url(d string) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", b.repo.Registry.Scheme(), b.repo.RegistryStr(), b.repo.RepositoryStr(), d)
}
