package cgroups

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	ocgroups "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestUpdateV2OnAFakeTree runs the v2 path of Update against a fake cgroupfs
// tree: the controllers are enabled down to the pod's cgroup and the CRI
// values land in the v2 files, converted (shares → weight as libcontainer
// converts them for the containers below).
func TestUpdateV2OnAFakeTree(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "berth"), 0o755))
	for _, dir := range []string{root, filepath.Join(root, "berth")} {
		must(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), nil, 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids\n"), 0o644))
	}
	shares, quota, period := uint64(512), int64(50000), uint64(100000)
	limit, pids := int64(64<<20), int64(100)
	res := &specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: &shares, Quota: &quota, Period: &period, Cpus: "0"},
		Memory: &specs.LinuxMemory{Limit: &limit},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	if err := update(true, root, "/berth/pod1", res); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"cpu.max": "50000 100000", "cpu.weight": strconv.FormatUint(ocgroups.ConvertCPUSharesToCgroupV2Value(shares), 10), "cpuset.cpus": "0", "memory.max": "67108864", "pids.max": "100",
	}
	for file, value := range want {
		data, err := os.ReadFile(filepath.Join(root, "berth", "pod1", file))
		if err != nil || strings.TrimSpace(string(data)) != value {
			t.Errorf("%s = %q (%v), want %q", file, data, err, value)
		}
	}
	for _, dir := range []string{root, filepath.Join(root, "berth")} {
		data, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		for _, c := range []string{"+cpu", "+memory", "+pids", "+cpuset"} {
			if !strings.Contains(string(data), c) {
				t.Errorf("%s/cgroup.subtree_control = %q: %s not enabled", dir, data, c)
			}
		}
	}
}
