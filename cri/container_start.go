package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StartContainer runs a created container's command. It claims the
// container's READY pod (a pod being stopped refuses it), then the container
// domain claims the container (a remove or stop of it waits; a start or
// remove in flight is waited for).
func (s *Server) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	c, err := s.containers.Find(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	_, releasePod, err := s.pods.Use(c.PodID)
	if err != nil {
		return nil, err
	}
	defer releasePod()
	if err := s.nriStart(ctx, c, func() error { return s.containers.Start(ctx, c.ID) }); err != nil {
		return nil, err
	}
	return &runtime.StartContainerResponse{}, nil
}
