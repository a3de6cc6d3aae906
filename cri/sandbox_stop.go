package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
)

// StopPodSandbox stops a pod; it keeps its record. CRI: stopping an unknown or
// already stopped pod succeeds (the kubelet retries stops freely).
func (s *Server) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	p, err := s.pods.Find(id)
	if errdefs.IsNotFound(err) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	log.G(ctx).WithField("pod", p.ID).Info("stopping pod sandbox")
	if err := s.stopPodContainers(ctx, p.ID); err != nil {
		return nil, err
	}
	if err := s.detachNetwork(ctx, p); err != nil {
		return nil, err
	}
	if err := s.pods.Stop(ctx, p.ID); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// stopPodContainers kills a pod's containers (the kubelet stopped them
// gracefully before; what is left goes now).
func (s *Server) stopPodContainers(ctx context.Context, podID string) error {
	if s.containers == nil {
		return nil
	}
	for _, c := range s.containers.List(func(c *container.Container) bool { return c.PodID == podID }) {
		if err := s.stopContainer(ctx, c, 0); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}
