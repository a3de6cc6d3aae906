package cri

import (
	"context"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListImages lists images; a filter with an image reference returns the image
// it names (in any reference form), or none.
func (s *Server) ListImages(ctx context.Context, req *runtime.ListImagesRequest) (*runtime.ListImagesResponse, error) {
	if ref := req.GetFilter().GetImage().GetImage(); ref != "" {
		img, err := s.images.Get(ctx, ref)
		if errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
			return &runtime.ListImagesResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &runtime.ListImagesResponse{Images: []*runtime.Image{s.toCRIImage(img)}}, nil
	}
	imgs, err := s.images.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &runtime.ListImagesResponse{Images: make([]*runtime.Image, 0, len(imgs))}
	for _, img := range imgs {
		resp.Images = append(resp.Images, s.toCRIImage(img))
	}
	return resp, nil
}
