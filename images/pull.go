package images

import (
	"context"
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/berth-cri/berth/images/remote"
)

// Pull fetches ref from its registry (through the configured mirrors) for the
// node's platform and stores it. Concurrent pulls of the same reference share
// one download. Nothing is recorded unless every blob and layer is verified
// and in place.
func (s *Service) Pull(ctx context.Context, ref string, auth remote.Auth) (*Image, error) {
	name, err := NormalizeName(ref)
	if err != nil {
		return nil, err
	}
	return s.pulls.do(ctx, name, func(ctx context.Context) (*Image, error) {
		return s.pull(ctx, name, auth)
	})
}

func (s *Service) pull(ctx context.Context, name string, auth remote.Auth) (*Image, error) {
	ctx = log.WithLogger(ctx, log.G(ctx).WithField("image", name))
	start := time.Now()
	s.counters.active.Add(1)
	defer s.counters.active.Add(-1)
	// This watch covers what comes before the layers (resolving, the
	// config); each layer download has its own (see makeLayer).
	ctx, watch := watchProgress(ctx, s.opts.ProgressTimeout, rateLimit{})
	defer watch.stop()

	img, p, err := s.fetch(ctx, name, auth, start, watch)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && cause != ctx.Err() {
			err = cause // the stall check says more than "context canceled"
		}
		result := "failed"
		if full, ok := diskFull(s.opts.Root, err); ok {
			err, result = full, "disk_full"
		}
		s.counters.pullDone(result, time.Since(start))
		return nil, fmt.Errorf("pull %s: %w", name, err)
	}
	elapsed := time.Since(start)
	s.counters.pullDone("ok", elapsed)
	fields := log.Fields{"id": img.ID, "duration": elapsed.Round(time.Millisecond).String()}
	if p != nil {
		n := p.fetched()
		fields["fetched"] = humanBytes(n)
		fields["rate"] = humanBytes(int64(float64(n)/max(elapsed.Seconds(), 1e-3))) + "/s"
	}
	log.G(ctx).WithFields(fields).Info("pulled image")
	return img, nil
}

func (s *Service) fetch(ctx context.Context, name string, auth remote.Auth, start time.Time, watch *progressWatch) (*Image, *pullProgress, error) {
	r, err := s.registry.Resolve(ctx, name, s.platform(), auth)
	if err != nil {
		return nil, nil, err
	}
	watch.touch()
	rawConfig, err := s.config(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	watch.disarm()
	var config ocispec.Image
	if err := json.Unmarshal(rawConfig, &config); err != nil {
		return nil, nil, fmt.Errorf("image config %s: %v: %w", r.ConfigDigest, err, errdefs.ErrInvalidArgument)
	}
	diffIDs := config.RootFS.DiffIDs
	if len(diffIDs) != len(r.Layers) {
		return nil, nil, fmt.Errorf("manifest has %d layers but the config %d diff IDs: %w", len(r.Layers), len(diffIDs), errdefs.ErrInvalidArgument)
	}
	for _, d := range diffIDs {
		if err := d.Validate(); err != nil {
			return nil, nil, fmt.Errorf("diff ID %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
		}
	}
	// identity.ChainIDs computes in place: give it a copy.
	chainIDs := identity.ChainIDs(slices.Clone(diffIDs))
	// From here on GC keeps what this pull stores, until the image record
	// keeps it instead; no lock is held while bytes flow.
	release := s.lease(pullContent(r, chainIDs))
	defer release()
	if err := s.putBlob(ctx, r.ManifestDigest, r.Manifest); err != nil {
		return nil, nil, err
	}
	if err := s.putBlob(ctx, r.ConfigDigest, rawConfig); err != nil {
		return nil, nil, err
	}
	p := newPullProgress(&s.transfers, start, r, chainIDs)
	stop := p.report(ctx, s.opts.ProgressInterval)
	layers, err := s.unpackLayers(ctx, r, diffIDs, chainIDs, p)
	stop()
	if err != nil {
		return nil, p, err
	}
	img, err := s.record(ctx, name, r, config, layers)
	return img, p, err
}

// pullContent is what a pull of r stores: its manifest, config, layer blobs
// and layers.
func pullContent(r *remote.Resolved, chainIDs []digest.Digest) []digest.Digest {
	ds := append([]digest.Digest{r.ManifestDigest, r.ConfigDigest}, chainIDs...)
	for _, l := range r.Layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

// unpackLayers makes sure every layer is unpacked, fetching the missing ones
// in parallel (bounded by MaxConcurrentDownloads). Layers are unpacked in
// any order, each into a dir of its own (overlayfs stacks them at mount
// time); only the records keep the order: the chain IDs and parents come
// from the config's diff IDs, and the image lists its layers bottom first.
func (s *Service) unpackLayers(ctx context.Context, r *remote.Resolved, diffIDs, chainIDs []digest.Digest, p *pullProgress) ([]Layer, error) {
	layers := make([]Layer, len(diffIDs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, s.opts.MaxConcurrentDownloads))
	for i := range diffIDs {
		layers[i] = Layer{ChainID: chainIDs[i], DiffID: diffIDs[i], Blob: r.Layers[i].Digest}
		if i > 0 {
			layers[i].Parent = chainIDs[i-1]
		}
		g.Go(func() error { return s.ensureLayer(gctx, r, i, &layers[i], p) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return layers, nil
}

// record commits the image and its layers, with its tag and repo digest.
func (s *Service) record(ctx context.Context, name string, r *remote.Resolved, config ocispec.Image, layers []Layer) (*Image, error) {
	img := &Image{
		ID:        r.ConfigDigest.String(),
		Manifest:  r.ManifestDigest,
		MediaType: r.ManifestMediaType,
		Config:    config.Config,
		PulledAt:  time.Now().UTC(),
	}
	for _, l := range layers {
		img.Layers = append(img.Layers, l.ChainID)
		img.Size += l.Size
	}
	names := []string{name}
	if !isDigestRef(name) {
		rd, err := repoDigest(name, r.Digest)
		if err != nil {
			return nil, err
		}
		names = append(names, rd)
	}
	return s.meta.commitImage(img, names)
}

// config returns the image config, from the store when it is there.
func (s *Service) config(ctx context.Context, r *remote.Resolved) ([]byte, error) {
	if data, err := s.content.ReadAll(r.ConfigDigest); err == nil {
		return data, nil
	}
	return r.Config(ctx)
}

// putBlob stores a small verified blob (manifest, config) unless present.
func (s *Service) putBlob(ctx context.Context, d digest.Digest, data []byte) error {
	if s.content.Has(d) {
		return nil
	}
	w, err := s.content.Writer(ctx, d, int64(len(data)))
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit(ctx)
}

func (s *Service) platform() v1.Platform {
	if s.opts.Platform.OS != "" {
		return v1.Platform{OS: s.opts.Platform.OS, Architecture: s.opts.Platform.Architecture, Variant: s.opts.Platform.Variant}
	}
	return v1.Platform{OS: goruntime.GOOS, Architecture: goruntime.GOARCH}
}
