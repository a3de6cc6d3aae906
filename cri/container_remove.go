package cri

import (
	"context"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/container"
)

// RemoveContainer stops a container if it runs, deletes it from its shim,
// unmounts and removes its rootfs, then its record and name. Removing an
// unknown container succeeds. The container is claimed: a start or stop in
// flight ends first, and what waits for it meanwhile finds it gone.
func (s *Server) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	c, err := s.containers.Find(req.GetContainerId())
	if errdefs.IsNotFound(err) {
		return &runtime.RemoveContainerResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := s.withContainer(ctx, c.ID, claim.Removing, func(c *container.Container) error { return s.removeContainer(ctx, c) }); err != nil {
		return nil, err
	}
	return &runtime.RemoveContainerResponse{}, nil
}

func (s *Server) removeContainer(ctx context.Context, c *container.Container) error {
	if err := s.stopContainer(ctx, c, 0); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if shim, err := s.shims.Lookup(ctx, c.PodID); err == nil {
		if err := shim.Delete(ctx, c.ID); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	s.unmountRootfs(ctx, c.ID)
	if p, err := s.pods.Get(c.PodID); err == nil {
		// The shim destroys the cgroup; a shim that died could not.
		if err := cgroups.RemoveEmpty(cgroupParent(p)+"/"+c.ID, cgroupParent(p)); err != nil {
			log.G(ctx).WithError(err).Warn("remove the container's cgroup")
		}
	}
	if err := s.deleteContainer(c.ID); err != nil {
		return err
	}
	if p, err := s.pods.Get(c.PodID); err == nil {
		s.containerNames.release(containerName(&runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}, podMetadata(p)), c.ID)
	}
	s.cpuSamples.forget(c.ID)
	log.G(ctx).WithField("container", c.ID).Info("removed container")
	return nil
}
