package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/images/remote"
)

// ImagePuller pulls images (images.Service).
type ImagePuller interface {
	Pull(ctx context.Context, ref string, auth remote.Auth) (*images.Image, error)
}

// PullImage pulls an image and returns its ID, the config digest that
// Image.id, Container.image_id and ContainerStatus.image_id also carry.
func (s *Server) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	// As RunPodSandbox: no image is pulled for a handler no pod can use.
	// Every handler shares the one image store.
	if _, err := s.runtimeHandler(req.GetImage().GetRuntimeHandler()); err != nil {
		return nil, err
	}
	ctx = log.WithLogger(ctx, log.G(ctx).WithField("image", ref))
	log.G(ctx).Info("pulling image")
	img, err := s.puller.Pull(ctx, ref, authOf(req.GetAuth()))
	if errdefs.IsUnavailable(err) {
		// The kubelet recognises an unreachable registry by this prefix
		// ("RegistryUnavailable: ...") on an Unknown code.
		return nil, fmt.Errorf("%w: %v", crierrors.ErrRegistryUnavailable, err)
	}
	if err != nil {
		return nil, err
	}
	log.G(ctx).WithField("id", img.ID).Info("pulled image")
	return &runtime.PullImageResponse{ImageRef: img.ID}, nil
}

func authOf(a *runtime.AuthConfig) remote.Auth {
	if a == nil {
		return remote.Auth{}
	}
	return remote.Auth{Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
}
