package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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
	if err := s.detachNetwork(ctx, p); err != nil {
		return nil, err
	}
	if err := s.pods.Stop(ctx, p.ID); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &runtime.StopPodSandboxResponse{}, nil
}
