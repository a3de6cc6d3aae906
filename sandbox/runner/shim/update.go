package shim

import (
	"fmt"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update sets the cgroup resources CRI may change on a created or running
// container (CPU, memory, cpuset, hugepages, unified) to r; an unset CPU
// quota or memory limit means none, unset CPU shares, period and cpusets keep
// their values. It is all or nothing: when a write fails, libcontainer writes
// the previous values back.
func (cs *Containers) Update(id string, r *specs.LinuxResources) error {
	c, err := cs.running(id)
	if err != nil {
		return err
	}
	cfg := c.c.Config()
	group := *cfg.Cgroups // the container's own is not to be changed in place
	res := *group.Resources
	setResources(&res, r)
	group.Resources = &res
	cfg.Cgroups = &group
	if err := c.c.Set(cfg); err != nil {
		return fmt.Errorf("update resources of %s: %w", id, err)
	}
	return nil
}

func setResources(res *cgroups.Resources, r *specs.LinuxResources) {
	res.CpuShares, res.CpuWeight, res.CpuQuota, res.CpuPeriod = 0, 0, -1, 0
	res.CpusetCpus, res.CpusetMems = "", ""
	if cpu := r.CPU; cpu != nil {
		res.CpusetCpus, res.CpusetMems = cpu.Cpus, cpu.Mems
		if cpu.Shares != nil {
			// v1 writes the shares, v2 the weight (as specconv converts
			// them when the container is made).
			res.CpuShares = *cpu.Shares
			res.CpuWeight = cgroups.ConvertCPUSharesToCgroupV2Value(*cpu.Shares)
		}
		if cpu.Quota != nil {
			res.CpuQuota = *cpu.Quota
		}
		if cpu.Period != nil {
			res.CpuPeriod = *cpu.Period
		}
	}
	res.Memory, res.MemorySwap = -1, 0
	if m := r.Memory; m != nil && m.Limit != nil {
		res.Memory = *m.Limit
		if m.Swap != nil {
			res.MemorySwap = *m.Swap
		}
	}
	res.HugetlbLimit = nil
	for _, h := range r.HugepageLimits {
		res.HugetlbLimit = append(res.HugetlbLimit, &cgroups.HugepageLimit{Pagesize: h.Pagesize, Limit: h.Limit})
	}
	res.Unified = r.Unified
}
