package cri

import (
	"context"
	"time"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StopContainer sends the container's stop signal (SIGTERM unless the image
// or the config names another), waits up to the timeout, then SIGKILL. Stopping
// an unknown or exited container succeeds (CRI: Stop is idempotent). Stops
// go together; a start or remove in flight is waited for.
func (s *Server) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	c, err := s.containers.Find(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtime.StopContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.containers.Stop(ctx, c.ID, time.Duration(req.GetTimeout())*time.Second); err != nil {
		return nil, err
	}
	s.nriStopped(ctx, c.ID, c)
	return &runtime.StopContainerResponse{}, nil
}
