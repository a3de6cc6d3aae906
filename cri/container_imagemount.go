package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/volumes"
)

// Image mounts (KEP-4639: a CRI Mount whose image is set) show an image's
// files read-only in a container. cri checks them and finds their images;
// the container domain mounts them (see sandbox/container/mounts.go for
// where and how); the spec binds each, or the sub path inside it.

// imageMounts checks cfg's image mounts (named, read-only, of pulled
// images) and returns them for the container domain.
func (s *Server) imageMounts(ctx context.Context, cfg *runtime.ContainerConfig) ([]container.ImageMount, error) {
	var out []container.ImageMount
	for i, m := range cfg.GetMounts() {
		ref := m.GetImage().GetImage()
		if ref == "" {
			if m.GetImage() != nil && m.GetHostPath() == "" {
				return nil, fmt.Errorf("image mount at %q names no image: %w", m.GetContainerPath(), errdefs.ErrInvalidArgument)
			}
			continue // a host path mount (an empty ImageSpec beside it means nothing)
		}
		if !m.GetReadonly() {
			return nil, fmt.Errorf("image mount of %q at %q must be read-only: %w", ref, m.GetContainerPath(), errdefs.ErrInvalidArgument)
		}
		img, err := s.images.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("image mount at %q: image %q (it must be pulled first): %w", m.GetContainerPath(), ref, err)
		}
		out = append(out, container.ImageMount{Index: i, Image: ref, ImageID: img.ID, ContainerPath: m.GetContainerPath()})
	}
	return out, nil
}

// withImageMounts returns cfg for the spec: its image mounts become
// read-only binds of the mounted images (by mount index), or of the sub
// paths inside them. A config without image mounts is returned as it is.
func withImageMounts(cfg *runtime.ContainerConfig, mounted map[int]string) (*runtime.ContainerConfig, error) {
	if len(mounted) == 0 {
		return cfg, nil
	}
	out := proto.Clone(cfg).(*runtime.ContainerConfig)
	for i, target := range mounted {
		m := out.Mounts[i]
		src, err := volumes.ResolveImageSubPath(target, m.GetImageSubPath())
		if err != nil {
			return nil, fmt.Errorf("image mount of %q: %w", m.GetImage().GetImage(), err)
		}
		m.Image, m.ImageSubPath, m.HostPath, m.SelinuxRelabel = nil, "", src, false
	}
	return out, nil
}
