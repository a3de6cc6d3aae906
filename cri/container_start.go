package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/container"
)

// StartContainer runs a created container's command. It claims the
// container (a remove or stop of it waits; a start or remove in flight is
// waited for) and its READY pod (a pod being stopped refuses it).
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
	c, release, err := s.containers.Claim(ctx, c.ID, claim.Starting)
	if err != nil {
		return nil, err
	}
	defer release()
	if c.State != container.Created {
		return nil, fmt.Errorf("container %s is %s, not CREATED: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	shim, err := s.shims.Lookup(ctx, c.PodID)
	if err != nil {
		return nil, err
	}
	started := time.Now().UTC()
	if err := shim.Start(ctx, c.ID); err != nil {
		return nil, err
	}
	// The exit watcher may have recorded the exit of a quick command already.
	if _, err := s.updateContainer(c.ID, func(c *container.Container) error {
		c.StartedAt = started
		if c.State == container.Created {
			c.State = container.Running
		}
		return nil
	}); err != nil {
		return nil, err
	}
	log.G(ctx).WithField("container", c.ID).Info("started container")
	return &runtime.StartContainerResponse{}, nil
}
