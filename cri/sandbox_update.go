package cri

import (
	"context"

	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/cgroups"
)

// UpdatePodSandboxResources applies a pod's new resources (in-place resize)
// to the pod cgroup Berth owns (/berth/<pod>, for pods without a cgroup
// parent): the pod's resources plus its overhead. A pod under a cgroup parent
// is in the kubelet's cgroup, which the kubelet resized before this call:
// there Berth has nothing to write, as containerd and CRI-O without plugins.
func (s *Server) UpdatePodSandboxResources(ctx context.Context, req *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	p, err := s.readyPod(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	err = s.nriUpdatePod(ctx, p, s.resources(req.GetOverhead()), s.resources(req.GetResources()), func() error {
		if p.Spec.CgroupParent != "" {
			log.G(ctx).WithField("pod", p.ID).Debug("pod resized in the kubelet's cgroup")
			return nil
		}
		total := podTotal(req.GetResources(), req.GetOverhead())
		if err := cgroups.Update(cgroupParent(p), s.resources(total)); err != nil {
			return err
		}
		log.G(ctx).WithField("pod", p.ID).Info("updated pod resources")
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}

// podTotal is what the pod cgroup gets: its containers' resources plus the
// pod's overhead (memory, CPU shares and quota add up; cpusets are the
// pod's).
func podTotal(r, overhead *runtime.LinuxContainerResources) *runtime.LinuxContainerResources {
	t := &runtime.LinuxContainerResources{CpuPeriod: r.GetCpuPeriod(), CpuQuota: r.GetCpuQuota(), CpuShares: r.GetCpuShares(),
		MemoryLimitInBytes: r.GetMemoryLimitInBytes(), CpusetCpus: r.GetCpusetCpus(), CpusetMems: r.GetCpusetMems(),
		HugepageLimits: r.GetHugepageLimits(), Unified: r.GetUnified()}
	if t.MemoryLimitInBytes > 0 {
		t.MemoryLimitInBytes += overhead.GetMemoryLimitInBytes()
	}
	if t.CpuQuota > 0 {
		t.CpuQuota += overhead.GetCpuQuota()
	}
	if t.CpuShares > 0 {
		t.CpuShares += overhead.GetCpuShares()
	}
	return t
}
