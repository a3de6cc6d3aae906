package cri

import (
	"context"
	"maps"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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
	err = s.nriUpdate(ctx, c, s.resources(r), func(linux *specs.LinuxResources) error {
		u := container.ResourceUpdate{Linux: linux, Record: recordResources(r)}
		if c.Resources != nil {
			u.Previous = s.resources(criResources(c.Resources))
		}
		return s.containers.UpdateResources(ctx, c.ID, u)
	})
	if err != nil {
		return nil, err
	}
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
