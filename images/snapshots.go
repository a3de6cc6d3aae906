package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// Rootfs is what a container's root filesystem is made of: an overlay of the
// image's layers (read-only, top first, as overlayfs wants lowerdir) under a
// writable upper dir. The runtime mounts it; this package never does.
type Rootfs struct {
	// Lower are the layer dirs, top layer first. With ReadOnly and a single
	// layer, the runtime may bind-mount Lower[0] instead of an overlay.
	Lower []string
	// Upper and Work are empty for a read-only view.
	Upper string
	Work  string
	// Dir is the snapshot's dir; Dir/l/<n> links to Lower[n], so that long
	// chains can be mounted with short relative paths (see MountOptions).
	Dir string
}

// maxMountOptions is what fits in the one page the kernel copies mount
// options into, with room to spare for the other options.
const maxMountOptions = 3800

// MountOptions returns the overlay mount options. When the absolute paths do
// not fit in a page (long layer chains), the options use short paths relative
// to chdir, where the mount must then be made from (the caller changes into
// chdir, or uses fsconfig's "lowerdir+" on newer kernels instead). chdir is
// empty when the options are absolute.
func (r *Rootfs) MountOptions() (options, chdir string) {
	opts := func(lower []string, upper, work string) string {
		o := "lowerdir=" + strings.Join(lower, ":")
		if upper != "" {
			o += ",upperdir=" + upper + ",workdir=" + work
		}
		return o + ",index=off"
	}
	abs := opts(r.Lower, r.Upper, r.Work)
	if len(abs) <= maxMountOptions {
		return abs, ""
	}
	short := make([]string, len(r.Lower))
	for i := range r.Lower {
		short[i] = "l/" + strconv.Itoa(i)
	}
	upper, work := "", ""
	if r.Upper != "" {
		upper, work = "upper", "work"
	}
	return opts(short, upper, work), r.Dir
}

// snapshotKey is what a container snapshot may be named (a container ID).
var snapshotKey = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// PrepareSnapshot creates the writable layer for key (a container ID) on top of
// the image and pins the image's layers until RemoveSnapshot. With readOnly, no
// upper/work dirs are made. Preparing an existing key is AlreadyExists.
func (s *Service) PrepareSnapshot(ctx context.Context, key, image string, readOnly bool) (*Rootfs, error) {
	if !snapshotKey.MatchString(key) {
		return nil, fmt.Errorf("snapshot key %q: %w", key, errdefs.ErrInvalidArgument)
	}
	s.gcLock.RLock()
	defer s.gcLock.RUnlock()
	img, err := s.Get(ctx, image)
	if err != nil {
		return nil, err
	}
	if len(img.Layers) == 0 {
		return nil, fmt.Errorf("image %s has no layers: %w", img.ID, errdefs.ErrFailedPrecondition)
	}
	top := img.Layers[len(img.Layers)-1]
	dir := filepath.Join(s.snapshotsDir, key)
	rootfs := &Rootfs{Lower: s.lowerDirs(img.Layers), Dir: dir}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
		}
		return nil, fmt.Errorf("create snapshot %q: %w", key, err)
	}
	if err := s.recordSnapshot(key, top, readOnly, dir, rootfs); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	log.G(ctx).WithFields(log.Fields{"snapshot": key, "image": img.ID}).Debug("prepared snapshot")
	return rootfs, nil
}

func (s *Service) recordSnapshot(key string, top digest.Digest, readOnly bool, dir string, rootfs *Rootfs) error {
	if err := os.Mkdir(filepath.Join(dir, "l"), 0o700); err != nil {
		return fmt.Errorf("create snapshot %q: %w", key, err)
	}
	for i, lower := range rootfs.Lower {
		if err := os.Symlink(lower, filepath.Join(dir, "l", strconv.Itoa(i))); err != nil {
			return fmt.Errorf("create snapshot %q: %w", key, err)
		}
	}
	if !readOnly {
		rootfs.Upper, rootfs.Work = filepath.Join(dir, "upper"), filepath.Join(dir, "work")
		for _, d := range []string{rootfs.Upper, rootfs.Work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				return fmt.Errorf("create snapshot %q: %w", key, err)
			}
		}
	}
	return s.meta.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).Put([]byte(key), []byte(top.String()))
	})
}

// lowerDirs returns the layer dirs of a chain, top first.
func (s *Service) lowerDirs(chain []digest.Digest) []string {
	out := make([]string, len(chain))
	for i, id := range chain {
		out[len(chain)-1-i] = s.layerDir(id)
	}
	return out
}

func (s *Service) layerDir(chainID digest.Digest) string {
	return filepath.Join(s.layersDir, strings.Replace(chainID.String(), ":", "-", 1))
}

// RemoveSnapshot deletes a container's writable layer and unpins the image's
// layers. A missing snapshot is not an error. The record goes last, so a crash
// midway leaves a record whose dir is gone, which Remove finishes on retry.
func (s *Service) RemoveSnapshot(ctx context.Context, key string) error {
	if !snapshotKey.MatchString(key) {
		return fmt.Errorf("snapshot key %q: %w", key, errdefs.ErrInvalidArgument)
	}
	if err := os.RemoveAll(filepath.Join(s.snapshotsDir, key)); err != nil {
		return fmt.Errorf("remove snapshot %q: %w", key, err)
	}
	return s.meta.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).Delete([]byte(key))
	})
}

// SnapshotKeys lists the keys of every snapshot, so that the caller can
// remove those whose owner is gone.
func (s *Service) SnapshotKeys() ([]string, error) {
	var keys []string
	err := s.meta.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	return keys, err
}
