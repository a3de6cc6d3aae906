package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemoveImage removes an image with all its tags and digests, as the peers do.
// A missing image is not an error (CRI: RemoveImage must be idempotent).
func (s *Server) RemoveImage(ctx context.Context, req *runtime.RemoveImageRequest) (*runtime.RemoveImageResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	log.G(ctx).WithField("image", ref).Info("removing image")
	if err := s.images.Remove(ctx, ref); err != nil {
		return nil, err
	}
	return &runtime.RemoveImageResponse{}, nil
}
