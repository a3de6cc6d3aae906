package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/images/content"
	"github.com/berth-cri/berth/images/remote"
	"github.com/berth-cri/berth/images/snapshot"
)

// Options configure the image service; cmd/berthd fills them from berth.toml.
type Options struct {
	// Root is the images root (e.g. /var/lib/berth/images).
	Root string
	// Hosts are per-registry settings (mirrors, TLS, plain HTTP).
	Hosts remote.Hosts
	// MaxConcurrentDownloads bounds the layers one pull fetches at once.
	MaxConcurrentDownloads int
	// ProgressTimeout cancels a pull whose bytes stall that long; 0 disables.
	ProgressTimeout time.Duration
	// MinRate (bytes/s) cancels a pull whose blob downloads, together, read
	// less than that over a MinRateWindow of transfer; 0 disables it.
	// berthd measures over ProgressTimeout.
	MinRate       int64
	MinRateWindow time.Duration
	// FetchChunkSize and FetchConnections shape the download of a large
	// blob: in ranges of FetchChunkSize bytes over FetchConnections
	// connections (16 MiB and 4 when zero), when it has at least
	// FetchParallelMin bytes (when zero: one chunk per connection) and the
	// registry serves ranges. FetchConnections 1 fetches every blob in one
	// stream.
	FetchChunkSize   int64
	FetchConnections int
	FetchParallelMin int64
	// ProgressInterval is how often a running pull logs its progress
	// (10s when zero).
	ProgressInterval time.Duration
	// Pinned are image names (any form) that RemoveImage refuses to remove.
	Pinned []string
	// Platform is the platform picked from multi-platform indexes.
	Platform ocispec.Platform
}

// Service is the image service.
type Service struct {
	opts         Options
	meta         *meta
	content      *content.Store
	registry     *remote.Client
	layersDir    string
	snapshotsDir string
	pinned       []string // normalised names

	// gcLock is held exclusively by GC and shared, briefly, by whatever
	// must see the store without GC in the middle (taking a lease,
	// preparing a snapshot); never across a transfer or a sync.
	gcLock    sync.RWMutex
	leases    leases
	pulls     pullGroup
	snapUsage usageCache
	disk      diskSync

	// layerFlights make the pulls that need the same layer (by chain ID)
	// share its download and unpack; transfers are the downloads running,
	// by chain ID, for the progress lines.
	layerFlights group[*Layer]
	transfers    transfers
	counters     pullCounters
	// apply unpacks a layer tar (snapshot.Apply; a seam for fault tests).
	apply applyFunc
}

// New opens (or creates) the image store at opts.Root and cleans up what an
// interrupted run left behind (see recover.go).
func New(ctx context.Context, opts Options) (*Service, error) {
	s := &Service{
		opts:         opts,
		layersDir:    filepath.Join(opts.Root, "layers"),
		snapshotsDir: filepath.Join(opts.Root, "snapshots"),
		disk:         osDiskSync,
		layerFlights: group[*Layer]{settle: true},
		apply:        snapshot.Apply,
	}
	for _, d := range []string{opts.Root, s.layersDir, s.snapshotsDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, p := range opts.Pinned {
		name, err := NormalizeName(p)
		if err != nil {
			return nil, fmt.Errorf("pinned image: %w", err)
		}
		s.pinned = append(s.pinned, name)
	}
	var err error
	if s.content, err = content.New(opts.Root); err != nil {
		return nil, err
	}
	if s.meta, err = openMeta(filepath.Join(opts.Root, "meta.db")); err != nil {
		return nil, err
	}
	s.registry = remote.NewClient(opts.Hosts)
	if err := s.recover(ctx); err != nil {
		s.meta.close()
		return nil, err
	}
	return s, nil
}

// Close releases the index.
func (s *Service) Close() error { return s.meta.close() }

// Get finds an image by any reference form: ID, unambiguous short ID, tag or
// digest, familiar or normalised. A missing image is ErrNotFound.
func (s *Service) Get(ctx context.Context, ref string) (*Image, error) {
	l, err := parseLookup(ref)
	if err != nil {
		return nil, err
	}
	return s.meta.find(l)
}

// List returns every image, sorted by ID.
func (s *Service) List(ctx context.Context) ([]*Image, error) {
	imgs, err := s.meta.list()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(imgs, func(a, b *Image) int { return strings.Compare(a.ID, b.ID) })
	return imgs, nil
}

// Pinned reports whether an image is pinned by the configuration.
func (s *Service) Pinned(img *Image) bool {
	for _, n := range s.pinned {
		if slices.Contains(img.RepoTags, n) || slices.Contains(img.RepoDigests, n) {
			return true
		}
	}
	return false
}

// Remove deletes an image with all its tags and digests, then frees the layers
// and blobs nothing else uses. A missing image is not an error; a pinned image
// is FailedPrecondition. Layers under a container snapshot stay until it goes.
func (s *Service) Remove(ctx context.Context, ref string) error {
	s.gcLock.Lock()
	trash, err := s.removeLocked(ctx, ref)
	s.gcLock.Unlock()
	return errors.Join(err, emptyTrash(trash))
}

func (s *Service) removeLocked(ctx context.Context, ref string) ([]string, error) {
	img, err := s.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if s.Pinned(img) {
		return nil, fmt.Errorf("image %s is pinned by the configuration: %w", img.ID, errdefs.ErrFailedPrecondition)
	}
	if err := s.meta.deleteImage(img.ID); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	log.G(ctx).WithField("image", img.ID).Info("removed image")
	return s.collect(ctx)
}

// gc collects what no record and no pull uses.
func (s *Service) gc(ctx context.Context) error {
	s.gcLock.Lock()
	trash, err := s.collect(ctx)
	s.gcLock.Unlock()
	return errors.Join(err, emptyTrash(trash))
}

// collect removes the records of layers that no image, snapshot or pull
// uses, moves their dirs aside (a rename: the slow removal of the files
// happens in emptyTrash, after gcLock is released) and deletes unused blobs.
// The caller holds gcLock exclusively.
func (s *Service) collect(ctx context.Context) (trash []string, err error) {
	leased := s.leases.held()
	unused, err := s.meta.dropUnusedLayers(leased)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, l := range unused {
		t, err := s.moveToTrash(s.layerDir(l.ChainID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		trash = append(trash, t)
	}
	errs = append(errs, s.collectBlobs(ctx, leased))
	return trash, errors.Join(errs...)
}

// moveToTrash renames a layer dir to a tmp-* name, which no pull reuses and
// start-up removes if a crash leaves it. A missing dir is no error.
func (s *Service) moveToTrash(dir string) (string, error) {
	t, err := os.MkdirTemp(s.layersDir, tmpLayerPrefix+"gc-")
	if err != nil {
		return "", fmt.Errorf("remove layer dir %s: %w", dir, err)
	}
	// rename(2) replaces an empty directory (os.Rename refuses to).
	if err := unix.Rename(dir, t); err != nil && !errors.Is(err, unix.ENOENT) {
		os.Remove(t)
		return "", fmt.Errorf("remove layer dir %s: %w", dir, err)
	}
	return t, nil
}

func emptyTrash(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		errs = append(errs, removeLayerDir(d))
	}
	return errors.Join(errs...)
}

// Usage is the disk use of the image store: blobs plus unpacked layers, from
// recorded sizes (no tree walk).
func (s *Service) Usage() (bytes, inodes int64, err error) {
	bytes, inodes = s.content.Usage()
	layers, err := s.meta.layers()
	if err != nil {
		return 0, 0, err
	}
	for _, l := range layers {
		bytes += l.Size
		inodes += l.Inodes
	}
	return bytes, inodes, nil
}

// Root is the images root, the mount point ImageFsInfo reports.
func (s *Service) Root() string { return s.opts.Root }

// SnapshotsDir holds the containers' writable layers.
func (s *Service) SnapshotsDir() string { return s.snapshotsDir }

// Inspect returns the stored manifest and config of an image, for verbose status.
func (s *Service) Inspect(img *Image) (manifest, config []byte, err error) {
	if manifest, err = s.content.ReadAll(img.Manifest); err != nil {
		return nil, nil, err
	}
	if config, err = s.content.ReadAll(digest.Digest(img.ID)); err != nil {
		return nil, nil, err
	}
	return manifest, config, nil
}
