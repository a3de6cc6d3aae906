package cri

import (
	"context"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	p, podErr := s.pods.Get(c.PodID)
	parent := "" // a pod that is gone: its cgroup is not known
	if podErr == nil {
		parent = cgroupParent(p)
	}
	if err := s.containers.Remove(ctx, c.ID, parent); err != nil {
		return nil, err
	}
	if podErr == nil {
		s.containerNames.release(containerName(&runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}, podMetadata(p)), c.ID)
	}
	s.cpuSamples.forget(c.ID)
	s.nriRemoved(ctx, c)
	return &runtime.RemoveContainerResponse{}, nil
}
