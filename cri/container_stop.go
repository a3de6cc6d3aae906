package cri

import (
	"context"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/container"
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
	err = s.withContainer(ctx, c.ID, claim.Stopping, func(c *container.Container) error {
		return s.stopContainer(ctx, c, time.Duration(req.GetTimeout())*time.Second)
	})
	if err != nil {
		return nil, err
	}
	return &runtime.StopContainerResponse{}, nil
}

func (s *Server) stopContainer(ctx context.Context, c *container.Container, timeout time.Duration) error {
	c = s.refresh(ctx, c)
	if isTerminal(c.State) {
		return nil
	}
	shim, err := s.shims.Lookup(ctx, c.PodID)
	if err != nil {
		return err
	}
	if c.State == container.Created {
		// Never started: nothing to wait for, the init just goes.
		if err := shim.Signal(ctx, c.ID, syscall.SIGKILL); err != nil {
			return err
		}
		_, err := s.waitExit(ctx, shim, c, 10*time.Second)
		if err == nil {
			_, err = s.updateContainer(c.ID, func(c *container.Container) error {
				if c.State == container.Created {
					c.State, c.FinishedAt, c.ExitCode, c.Reason = container.Exited, time.Now().UTC(), 137, "Error"
				}
				return nil
			})
		}
		return err
	}
	log.G(ctx).WithFields(log.Fields{"container": c.ID, "timeout": timeout}).Info("stopping container")
	if timeout > 0 {
		sig := syscall.Signal(c.StopSignal)
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		if err := shim.Signal(ctx, c.ID, sig); err != nil {
			return err
		}
		if done, err := s.waitExit(ctx, shim, c, timeout); err != nil || done {
			return err
		}
	}
	if err := shim.Signal(ctx, c.ID, syscall.SIGKILL); err != nil {
		return err
	}
	_, err = s.waitExit(ctx, shim, c, 30*time.Second)
	return err
}
