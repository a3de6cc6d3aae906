package cri

import (
	"context"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/container"
)

// RemovePodSandbox removes a pod: it is stopped if needed, its namespaces,
// mounts and files go, then its record and its name. Removing an unknown pod
// succeeds. The pod is claimed first, as StopPodSandbox does.
func (s *Server) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	p, release, err := s.claimPod(ctx, id, claim.Removing)
	if errdefs.IsNotFound(err) {
		return &runtime.RemovePodSandboxResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer release()
	log.G(ctx).WithField("pod", p.ID).Info("removing pod sandbox")
	if err := s.removePodContainers(ctx, p); err != nil {
		return nil, err
	}
	if err := s.detachNetwork(ctx, p); err != nil {
		return nil, err
	}
	if err := s.pods.Stop(ctx, p.ID); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	s.cpuSamples.forget(p.ID)
	if err := s.pods.Remove(ctx, p.ID); err != nil {
		return nil, err
	}
	container.ReleaseSELinuxLabel(p.Spec.SELinuxProcessLabel)
	logNRI(ctx, s.nri.RemovePodSandbox(ctx, nriPod(p)))
	s.podNames.release(podName(podMetadata(p)), p.ID)
	return &runtime.RemovePodSandboxResponse{}, nil
}

// removePodContainers removes a pod's containers and names, and stops its
// shim.
func (s *Server) removePodContainers(ctx context.Context, p *sandbox.Pod) error {
	if s.containers == nil {
		return nil
	}
	ctrs := s.containers.List(func(c *container.Container) bool { return c.PodID == p.ID })
	err := s.containers.RemovePod(ctx, p.ID, cgroupParent(p))
	for _, c := range ctrs { // the names of those removed, also when one failed
		if _, gerr := s.containers.Get(c.ID); errdefs.IsNotFound(gerr) {
			s.containerNames.release(containerName(&runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}, podMetadata(p)), c.ID)
			s.cpuSamples.forget(c.ID)
			s.nriRemoved(ctx, c)
		}
	}
	if err != nil {
		return err
	}
	// The kubelet owns the cgroup parents it sends; Berth's own goes here.
	if p.Spec.CgroupParent == "" {
		if err := cgroups.RemoveEmpty(cgroupParent(p), "/berth"); err != nil {
			log.G(ctx).WithError(err).Warn("remove the pod's cgroup")
		}
	}
	return nil
}
