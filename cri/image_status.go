package cri

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageStatus returns an image by any reference form. A missing image is an
// empty response, not an error (the kubelet relies on it). With verbose,
// info["info"] holds the manifest, config, size and chain IDs as JSON.
func (s *Server) ImageStatus(ctx context.Context, req *runtime.ImageStatusRequest) (*runtime.ImageStatusResponse, error) {
	ref := req.GetImage().GetImage()
	if ref == "" {
		return nil, fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.images.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return &runtime.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtime.ImageStatusResponse{Image: s.toCRIImage(img)}
	if !req.GetVerbose() {
		return resp, nil
	}
	manifest, config, err := s.images.Inspect(img)
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", img.ID, err)
	}
	info, err := json.Marshal(map[string]any{
		"manifestDigest": img.Manifest,
		"manifest":       json.RawMessage(manifest),
		"config":         json.RawMessage(config),
		"size":           img.Size,
		"chainIDs":       img.Layers,
		"pulledAt":       img.PulledAt,
	})
	if err != nil {
		return nil, err
	}
	resp.Info = map[string]string{"info": string(info)}
	return resp, nil
}
