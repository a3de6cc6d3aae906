package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcr "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// Auth carries the credentials of a CRI AuthConfig.
type Auth struct {
	Username, Password string
	Auth               string // base64 "user:password"
	IdentityToken      string
	RegistryToken      string
}

func (a Auth) authenticator() authn.Authenticator {
	if a == (Auth{}) {
		return authn.Anonymous
	}
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken})
}

// Client resolves and fetches images.
type Client struct {
	hosts      Hosts
	transports transports
}

// NewClient returns a client for the given host settings.
func NewClient(hosts Hosts) *Client { return &Client{hosts: hosts} }

// Layer describes one layer blob of a manifest.
type Layer struct {
	Digest    digest.Digest
	Size      int64
	MediaType string
}

// Resolved is one platform's image as a registry serves it.
type Resolved struct {
	// Endpoint is the host[:port] that served it (a mirror or the host).
	Endpoint string
	// Digest is what the reference resolved to: the index's digest for a
	// multi-platform image, else the manifest's. It names the repo digest.
	Digest digest.Digest
	// Manifest is the platform manifest.
	Manifest          []byte
	ManifestDigest    digest.Digest
	ManifestMediaType string
	ConfigDigest      digest.Digest
	Layers            []Layer

	img   v1.Image
	blobs *blobClient
}

// Resolve finds ref (a normalised reference, tag or digest) for platform,
// trying the host's endpoints in order. Registry credentials go to the host
// itself, never to mirrors.
func (c *Client) Resolve(ctx context.Context, ref string, platform v1.Platform, auth Auth) (*Resolved, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %v: %w", ref, err, errdefs.ErrInvalidArgument)
	}
	host := parsed.Context().RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	eps, err := c.hosts.endpoints(host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range eps {
		r, err := c.resolveAt(ctx, e, parsed, platform, auth)
		if err == nil {
			return r, nil
		}
		log.G(ctx).WithError(err).WithField("endpoint", e.host).Debug("endpoint could not serve the image")
		errs = append(errs, err)
		if ctx.Err() != nil || !nextEndpoint(err) {
			break
		}
	}
	return nil, classify(ref, errs)
}

// nextEndpoint says whether another endpoint may do better after err.
func nextEndpoint(err error) bool {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode == http.StatusNotFound || terr.StatusCode >= 500 ||
			terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden
	}
	return true // connection errors and the like
}

func (c *Client) resolveAt(ctx context.Context, e endpoint, ref name.Reference, platform v1.Platform, auth Auth) (*Resolved, error) {
	ref, err := onEndpoint(ref, e)
	if err != nil {
		return nil, err
	}
	rt, err := c.transports.get(e)
	if err != nil {
		return nil, err
	}
	a := auth.authenticator()
	if e.mirror {
		a = authn.Anonymous
	}
	opts := []ggcr.Option{ggcr.WithContext(ctx), ggcr.WithTransport(rt), ggcr.WithAuth(a), ggcr.WithPlatform(platform)}
	desc, err := ggcr.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	if desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed {
		return nil, fmt.Errorf("%s uses the Docker schema 1 manifest format, which is not supported: %w", ref, errdefs.ErrFailedPrecondition)
	}
	img, err := desc.Image() // picks the platform from an index
	if err != nil {
		return nil, err
	}
	r, err := describe(e.host, digest.Digest(desc.Digest.String()), img)
	if err != nil {
		return nil, err
	}
	r.blobs = &blobClient{repo: ref.Context(), rt: rt, auth: a}
	return r, nil
}

// onEndpoint moves ref's repository to endpoint e.
func onEndpoint(ref name.Reference, e endpoint) (name.Reference, error) {
	var opts []name.Option
	if e.plain {
		opts = append(opts, name.Insecure)
	}
	repo := e.host + "/" + ref.Context().RepositoryStr()
	if d, ok := ref.(name.Digest); ok {
		return name.NewDigest(repo+"@"+d.DigestStr(), opts...)
	}
	return name.NewTag(repo+":"+ref.Identifier(), opts...)
}

func describe(endpoint string, top digest.Digest, img v1.Image) (*Resolved, error) {
	r := &Resolved{Endpoint: endpoint, Digest: top, img: img}
	var err error
	if r.Manifest, err = img.RawManifest(); err != nil {
		return nil, err
	}
	r.ManifestDigest = digest.FromBytes(r.Manifest)
	mt, err := img.MediaType()
	if err != nil {
		return nil, err
	}
	r.ManifestMediaType = string(mt)
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	r.ConfigDigest = digest.Digest(m.Config.Digest.String())
	if err := r.ConfigDigest.Validate(); err != nil {
		return nil, fmt.Errorf("config digest %q: %v: %w", m.Config.Digest, err, errdefs.ErrInvalidArgument)
	}
	for _, l := range m.Layers {
		d := digest.Digest(l.Digest.String())
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("layer digest %q: %v: %w", l.Digest, err, errdefs.ErrInvalidArgument)
		}
		r.Layers = append(r.Layers, Layer{Digest: d, Size: l.Size, MediaType: string(l.MediaType)})
	}
	return r, nil
}

// Config fetches the image config and checks it against the manifest's digest.
func (r *Resolved) Config(ctx context.Context) ([]byte, error) {
	data, err := r.img.RawConfigFile()
	if err != nil {
		return nil, classify(string(r.ConfigDigest), []error{err})
	}
	if got := digest.FromBytes(data); got != r.ConfigDigest {
		return nil, fmt.Errorf("config has digest %s, the manifest says %s: %w", got, r.ConfigDigest, errdefs.ErrDataLoss)
	}
	return data, nil
}

// Fetch streams layer i's compressed blob from the endpoint that served the
// manifest. go-containerregistry checks its size and digest: the read that
// reaches the end fails on a mismatch.
func (r *Resolved) Fetch(ctx context.Context, i int) (io.ReadCloser, error) {
	layers, err := r.img.Layers()
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(layers) {
		return nil, fmt.Errorf("layer %d of %d: %w", i, len(layers), errdefs.ErrInvalidArgument)
	}
	rc, err := layers[i].Compressed()
	if err != nil {
		return nil, classify(string(r.Layers[i].Digest), []error{err})
	}
	return rc, nil
}

// classify turns the endpoints' errors into the error the caller reports: the
// most telling one, wrapped in the right sentinel.
func classify(ref string, errs []error) error {
	all := errors.Join(errs...)
	var terr *transport.Error
	for _, err := range errs {
		if errors.As(err, &terr) {
			switch terr.StatusCode {
			case http.StatusUnauthorized:
				return fmt.Errorf("pull %s: authentication failed: %v: %w", ref, terr, errdefs.ErrUnauthenticated)
			case http.StatusForbidden:
				return fmt.Errorf("pull %s: access denied: %v: %w", ref, terr, errdefs.ErrPermissionDenied)
			}
		}
	}
	for _, err := range errs {
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return fmt.Errorf("pull %s: not found: %v: %w", ref, terr, errdefs.ErrNotFound)
		}
		if errdefs.IsFailedPrecondition(err) || errdefs.IsInvalidArgument(err) || errdefs.IsDataLoss(err) {
			return err
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
	if unreachable(errs) {
		return fmt.Errorf("pull %s: registry unreachable: %v: %w", ref, all, errdefs.ErrUnavailable)
	}
	return fmt.Errorf("pull %s: %w", ref, all)
}

func unreachable(errs []error) bool {
	for _, err := range errs {
		var nerr net.Error
		var oerr *net.OpError
		var terr *transport.Error
		switch {
		case errors.As(err, &terr):
			if terr.StatusCode < 500 {
				return false
			}
		case errors.As(err, &oerr), errors.As(err, &nerr), strings.Contains(err.Error(), "connection refused"):
		default:
			return false
		}
	}
	return len(errs) > 0
}
