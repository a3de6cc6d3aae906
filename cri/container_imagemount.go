package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/volumes"
)

// Image mounts (KEP-4639: a CRI Mount whose image is set) show an image's
// files read-only in a container. Each is a read-only snapshot of the image
// (it pins the image's layers, so removing the image while the container
// exists leaves them), mounted as an overlay without an upper dir at
// <container dir>/image-mounts/<n>, n the mount's index; the container gets
// a bind of it, or of the sub path inside it. The snapshot's key is
// "<container id>.image<n>".

// imageMountsDir holds a container's image mounts.
func (s *Server) imageMountsDir(id string) string {
	return filepath.Join(s.containerDir(id), "image-mounts")
}

func imageMountKey(id string, n int) string { return id + ".image" + strconv.Itoa(n) }

// snapshotOwner is the container a snapshot key belongs to: the key itself
// for a rootfs, the part before the dot for an image mount.
func snapshotOwner(key string) string {
	owner, _, _ := strings.Cut(key, ".")
	return owner
}

// mountImages mounts the images of cfg's image mounts and returns cfg for the
// spec, its image mounts become read-only binds of host paths, and the IDs of
// the mounted images by mount index. What it mounted is undone by
// unmountImages (unmountRootfs), also when it fails midway.
func (s *Server) mountImages(ctx context.Context, id string, cfg *runtime.ContainerConfig, pod *sandbox.Pod,
	mountLabel string) (*runtime.ContainerConfig, map[int]string, error) {
	refs := map[int]string{}
	var out *runtime.ContainerConfig
	for i, m := range cfg.GetMounts() {
		if m.GetImage().GetImage() == "" {
			if m.GetImage() != nil && m.GetHostPath() == "" {
				return nil, nil, fmt.Errorf("image mount at %q names no image: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
			}
			continue // a host path mount (an empty ImageSpec beside it means nothing)
		}
		if !m.GetReadonly() {
			return nil, nil, fmt.Errorf("image mount of %q at %q must be read-only: %w", m.GetImage().GetImage(), m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		src, ref, err := s.mountImage(ctx, id, i, m, pod, mountLabel)
		if err != nil {
			return nil, nil, err
		}
		if out == nil {
			out = proto.Clone(cfg).(*runtime.ContainerConfig)
		}
		om := out.Mounts[i]
		om.Image, om.ImageSubPath, om.HostPath, om.SelinuxRelabel = nil, "", src, false
		refs[i] = ref
	}
	if out == nil {
		return cfg, refs, nil
	}
	return out, refs, nil
}

// mountImage mounts the image of cfg's mount n read-only and returns the host
// path the container binds (the sub path resolved in it) and the image's ID.
// In a pod with its own user namespace the layers are idmapped into it, as
// the rootfs's are, so that the image's root files are the pod's root's.
func (s *Server) mountImage(ctx context.Context, id string, n int, m *runtime.Mount, pod *sandbox.Pod,
	mountLabel string) (string, string, error) {
	ref := m.GetImage().GetImage()
	img, err := s.images.Get(ctx, ref)
	if err != nil {
		return "", "", fmt.Errorf("image mount at %q: image %q (it must be pulled first): %w", m.GetContainerPath(), ref, err)
	}
	target := filepath.Join(s.imageMountsDir(id), strconv.Itoa(n))
	snap, err := s.snapshots.PrepareSnapshot(ctx, imageMountKey(id, n), img.ID, true)
	if err != nil {
		return "", "", fmt.Errorf("image mount of %q: %w", ref, err)
	}
	if len(snap.Lower) == 1 {
		empty, err := container.EmptyLowerDir(s.imageMountsDir(id))
		if err != nil {
			return "", "", err
		}
		snap.Lower = append(snap.Lower, empty)
	}
	if u := pod.Spec.UserNS; u != nil {
		uid, gid := u.Root()
		err = container.MountRootfsMapped(container.Layers{Lower: snap.Lower, MountLabel: mountLabel},
			target, pod.Pins[sandbox.UserNS], uid, gid)
	} else {
		opts, dir := snap.MountOptions()
		err = container.MountRootfs(container.WithMountLabel(opts, mountLabel), dir, target)
	}
	if err != nil {
		return "", "", fmt.Errorf("image mount of %q: %w", ref, err)
	}
	src, err := volumes.ResolveImageSubPath(target, m.GetImageSubPath())
	if err != nil {
		return "", "", fmt.Errorf("image mount of %q: %w", ref, err)
	}
	log.G(ctx).WithFields(log.Fields{"image": img.ID, "path": m.GetContainerPath()}).Debug("mounted image")
	return src, img.ID, nil
}

// unmountImages unmounts a container's image mounts and removes their
// snapshots (found by key: a crash may have left one not mounted yet). It
// fails, leaving the rest for a retry, if one cannot be unmounted: the
// container's dir must then not be removed.
func (s *Server) unmountImages(ctx context.Context, id string) error {
	dir := s.imageMountsDir(id)
	for _, name := range container.DirNames(dir) {
		if _, err := strconv.Atoi(name); err != nil {
			continue // the empty lower dir
		}
		if err := container.UnmountRootfs(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("image mount %s: %w", name, err)
		}
	}
	keys, err := s.snapshots.SnapshotKeys()
	if err != nil {
		return err
	}
	for _, key := range keys {
		if key != id && snapshotOwner(key) == id {
			if err := s.snapshots.RemoveSnapshot(ctx, key); err != nil {
				return err
			}
		}
	}
	return nil
}
