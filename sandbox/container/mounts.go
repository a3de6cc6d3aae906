package container

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/log"
)

// Image mounts (KEP-4639: a CRI Mount whose image is set) show an image's
// files read-only in a container. Each is a read-only snapshot of the image
// (it pins the image's layers, so removing the image while the container
// exists leaves them), mounted as an overlay without an upper dir at
// <container dir>/image-mounts/<n>, n the mount's index; the container gets
// a bind of it, or of a sub path inside it. The snapshot's key is
// "<container id>.image<n>".

// mountSnapshot mounts a snapshot at target, its files labelled mountLabel
// on a host with SELinux; in a pod with its own user namespace the layers
// are idmapped into it, so that the image's root files are the pod's root's.
func (s *Service) mountSnapshot(snap *Snapshot, target string, pod Pod, mountLabel string) error {
	if pod.UserNS != "" {
		l := Layers{Lower: snap.Lower, Upper: snap.Upper, Work: snap.Work, MountLabel: mountLabel}
		return s.os.MountOverlayMapped(l, target, pod.UserNS, pod.RootUID, pod.RootGID)
	}
	return s.os.MountOverlay(WithMountLabel(snap.Options, mountLabel), snap.Chdir, target)
}

// imageMount is an image mount that Create acquired: its snapshot, and
// whether it is mounted.
type imageMount struct {
	index   int
	key     string
	target  string
	mounted bool
}

// mountImages mounts the images of the container's image mounts. It returns
// what it acquired, also when it fails midway: undoImageMounts undoes it.
func (s *Service) mountImages(ctx context.Context, in CreateInput) ([]imageMount, error) {
	var done []imageMount
	for _, m := range in.ImageMounts {
		im := imageMount{index: m.Index, key: imageMountKey(in.Record.ID, m.Index),
			target: filepath.Join(s.imageMountsDir(in.Record.ID), strconv.Itoa(m.Index))}
		snap, err := s.snaps.Prepare(ctx, im.key, m.ImageID, true)
		if err != nil {
			return done, fmt.Errorf("image mount of %q: %w", m.Image, err)
		}
		done = append(done, im)
		if len(snap.Lower) == 1 {
			// overlayfs without an upper dir needs two lower dirs.
			empty := filepath.Join(s.imageMountsDir(in.Record.ID), ".empty")
			if err := s.os.MakeDir(empty); err != nil {
				return done, err
			}
			snap.Lower = append(snap.Lower, empty)
			// Two absolute paths fit in the options' page.
			snap.Options, snap.Chdir = "lowerdir="+strings.Join(snap.Lower, ":")+",index=off", ""
		}
		if err := s.mountSnapshot(snap, im.target, in.Pod, in.MountLabel); err != nil {
			return done, fmt.Errorf("image mount of %q: %w", m.Image, err)
		}
		done[len(done)-1].mounted = true
		log.G(ctx).WithFields(log.Fields{"image": m.ImageID, "path": m.ContainerPath}).Debug("mounted image")
	}
	return done, nil
}

// undoImageMounts unmounts image mounts and removes their snapshots, last
// first. It stops at a mount that would not go (what is under it stays) and
// says so with false.
func (s *Service) undoImageMounts(ctx context.Context, mounts []imageMount) bool {
	for _, m := range slices.Backward(mounts) {
		if m.mounted && !s.unmount(ctx, m.target) {
			return false
		}
		s.removeSnapshot(ctx, m.key)
	}
	return true
}

// unmount detaches a mount; it logs a failure and says so with false.
func (s *Service) unmount(ctx context.Context, target string) bool {
	if err := s.os.Unmount(target); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
		return false
	}
	return true
}

// removeSnapshot removes a snapshot on a fresh bounded context.
func (s *Service) removeSnapshot(ctx context.Context, key string) {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.snaps.Remove(ctx, key); err != nil {
		log.G(ctx).WithError(err).WithField("snapshot", key).Warn("remove snapshot")
	}
}

// removeDir removes a container's state dir once nothing is mounted in it.
func (s *Service) removeDir(ctx context.Context, dir string) {
	if err := s.os.RemoveAll(dir); err != nil {
		log.G(ctx).WithError(err).Warn("remove the container's dir")
	}
}

// removeFiles unmounts a container's image mounts and rootfs, removes their
// snapshots, then the container's dir. What a crash or a failed step left
// half-made is found by its place (mounts) or key (snapshots), so it serves
// RemoveContainer and recovery alike. A mount that would not go keeps what is
// under it, and its snapshot, for a retry.
func (s *Service) removeFiles(ctx context.Context, id string) {
	if err := s.unmountImages(ctx, id); err != nil {
		log.G(ctx).WithError(err).Warn("unmount image mounts")
		return
	}
	if !s.unmount(ctx, s.rootfs(id)) {
		return
	}
	s.removeSnapshot(ctx, id)
	s.removeDir(ctx, s.dir(id))
}

// unmountImages unmounts a container's image mounts and removes their
// snapshots (found by key: a crash may have left one not mounted yet). It
// fails, leaving the rest for a retry, if one cannot be unmounted: the
// container's dir must then not be removed.
func (s *Service) unmountImages(ctx context.Context, id string) error {
	dir := s.imageMountsDir(id)
	for _, name := range s.os.DirNames(dir) {
		if _, err := strconv.Atoi(name); err != nil {
			continue // the empty lower dir
		}
		if err := s.os.Unmount(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("image mount %s: %w", name, err)
		}
	}
	keys, err := s.snaps.Keys()
	if err != nil {
		return err
	}
	for _, key := range keys {
		if key != id && snapshotOwner(key) == id {
			if err := s.snaps.Remove(ctx, key); err != nil {
				return err
			}
		}
	}
	return nil
}
