package helper

import (
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// update sets the cgroup resources CRI may change on a created or running
// container (CPU, memory, cpuset, hugepages, unified) to r; an unset CPU
// quota or memory limit means none, unset CPU shares, period and cpusets keep
// their values. It is all or nothing: when a write fails, libcontainer writes
// the previous values back.
func update(c *libcontainer.Container, r *specs.LinuxResources) error {
	if r == nil {
		return fmt.Errorf("update without resources: %w", errdefs.ErrInvalidArgument)
	}
	if st, err := c.Status(); err != nil || (st != libcontainer.Created && st != libcontainer.Running) {
		return fmt.Errorf("container is not running: %w", errdefs.ErrFailedPrecondition)
	}
	cfg := c.Config()
	group := *cfg.Cgroups // the container's own is not to be changed in place
	res := *group.Resources
	setResources(&res, r)
	group.Resources = &res
	cfg.Cgroups = &group
	return c.Set(cfg)
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
