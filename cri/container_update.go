package cri

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
)

// UpdateContainerResources changes a created or running container's cgroup
// settings, all or nothing, then records them. oom_score_adj belongs to the
// running process and is only recorded. A crash between the two steps leaves
// the old settings in the record; the kubelet, seeing them in the status,
// asks again.
func (s *Server) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	c, err := s.containers.Find(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := req.GetLinux()
	if r == nil {
		return &runtime.UpdateContainerResourcesResponse{}, nil
	}
	if c.State != container.Created && c.State != container.Running {
		return nil, fmt.Errorf("container %s is %s: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	shim, err := s.shims.Lookup(ctx, c.PodID)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	if err := shim.Update(ctx, c.ID, s.resources(r)); err != nil {
		return nil, err
	}
	if _, err := s.updateContainer(c.ID, func(c *container.Container) error {
		c.Resources = recordResources(r)
		return nil
	}); err != nil {
		if c.Resources != nil {
			undo, cancel := cleanupContext(ctx)
			defer cancel()
			if uerr := shim.Update(undo, c.ID, s.resources(criResources(c.Resources))); uerr != nil {
				log.G(ctx).WithError(uerr).WithField("container", c.ID).Warn("set the previous resources back")
			}
		}
		return nil, err
	}
	log.G(ctx).WithField("container", c.ID).Info("updated container resources")
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

func recordResources(r *runtime.LinuxContainerResources) *container.Resources {
	if r == nil {
		return nil
	}
	out := &container.Resources{CPUPeriod: r.GetCpuPeriod(), CPUQuota: r.GetCpuQuota(), CPUShares: r.GetCpuShares(),
		MemoryLimit: r.GetMemoryLimitInBytes(), MemorySwapLimit: r.GetMemorySwapLimitInBytes(), OOMScoreAdj: r.GetOomScoreAdj(),
		CpusetCPUs: r.GetCpusetCpus(), CpusetMems: r.GetCpusetMems(), Unified: maps.Clone(r.GetUnified())}
	for _, h := range r.GetHugepageLimits() {
		if out.Hugepages == nil {
			out.Hugepages = map[string]uint64{}
		}
		out.Hugepages[h.GetPageSize()] = h.GetLimit()
	}
	return out
}

func criResources(r *container.Resources) *runtime.LinuxContainerResources {
	if r == nil {
		return nil
	}
	out := &runtime.LinuxContainerResources{CpuPeriod: r.CPUPeriod, CpuQuota: r.CPUQuota, CpuShares: r.CPUShares,
		MemoryLimitInBytes: r.MemoryLimit, MemorySwapLimitInBytes: r.MemorySwapLimit, OomScoreAdj: r.OOMScoreAdj,
		CpusetCpus: r.CpusetCPUs, CpusetMems: r.CpusetMems, Unified: maps.Clone(r.Unified)}
	for _, size := range slices.Sorted(maps.Keys(r.Hugepages)) {
		out.HugepageLimits = append(out.HugepageLimits, &runtime.HugepageLimit{PageSize: size, Limit: r.Hugepages[size]})
	}
	return out
}
