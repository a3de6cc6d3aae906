package helper

import (
	"testing"

	"github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestSetResources(t *testing.T) {
	shares, quota, period, limit := uint64(256), int64(50000), uint64(100000), int64(64<<20)
	old := cgroups.Resources{CpuShares: 512, CpuWeight: 59, CpuQuota: 20000, Memory: 1 << 30, CpusetCpus: "0", PidsLimit: new(int64),
		HugetlbLimit: []*cgroups.HugepageLimit{{Pagesize: "2MB", Limit: 1}}}
	res := old
	setResources(&res, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "1"},
		Memory: &specs.LinuxMemory{Limit: &limit}})
	if res.CpuShares != 256 || res.CpuWeight != cgroups.ConvertCPUSharesToCgroupV2Value(256) || res.CpuQuota != 50000 || res.CpuPeriod != 100000 || res.Memory != 64<<20 || res.CpusetCpus != "1" ||
		res.HugetlbLimit != nil || res.PidsLimit != old.PidsLimit {
		t.Fatalf("update = %+v", res)
	}
	// Unset: no quota, no memory limit; shares and cpusets keep theirs
	// (libcontainer leaves zero values alone).
	res = old
	setResources(&res, &specs.LinuxResources{})
	if res.CpuQuota != -1 || res.Memory != -1 || res.CpuShares != 0 || res.CpuWeight != 0 || res.CpusetCpus != "" {
		t.Fatalf("unset = %+v", res)
	}
}
