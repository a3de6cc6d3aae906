package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RemovePodSandbox removes a pod: it is stopped if needed, its namespaces,
// mounts and files go, then its record and its name. Removing an unknown pod
// succeeds.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	p, err := s.pods.Find(id)
	if errdefs.IsNotFound(err) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	log.G(ctx).WithField("pod", p.ID).Info("removing pod sandbox")
	if err := s.detachNetwork(ctx, p); err != nil {
		return nil, err
	}
	if err := s.pods.Stop(ctx, p.ID); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	if err := s.pods.Remove(ctx, p.ID); err != nil {
		return nil, err
	}
	s.podNames.release(podName(podMetadata(p)), p.ID)
	return &runtime.RemovePodSandboxResponse{}, nil
}
