package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/claim"
)

// StopPodSandbox stops a pod; it keeps its record. CRI: stopping an unknown or
// already stopped pod succeeds (the kubelet retries stops freely). The pod is
// claimed first: creates and starts of its containers in flight end, new
// ones are refused, another stop or remove waits its turn.
func (s *Server) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	p, release, err := s.claimPod(ctx, id, claim.Stopping)
	if errdefs.IsNotFound(err) {
		return &runtime.StopPodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer release()
	log.G(ctx).WithField("pod", p.ID).Info("stopping pod sandbox")
	if err := s.stopPodContainers(ctx, p.ID); err != nil {
		return nil, err
	}
	s.nriStopPod(ctx, p)
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
	return s.containers.StopPod(ctx, podID)
}

// claimPod finds a pod by ID or unique prefix and waits until op (a stop or
// a remove) has it alone.
func (s *Server) claimPod(ctx context.Context, idOrPrefix string, op claim.Op) (*sandbox.Pod, func(), error) {
	p, err := s.pods.Find(idOrPrefix)
	if err != nil {
		return nil, nil, err
	}
	return s.pods.Claim(ctx, p.ID, op)
}
