package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// cAdvisor's metrics of a container with a CPU quota that burns, holds a
// listening socket and sends a ping, checked against its cgroup's files,
// /proc and statfs.
func TestCadvisorMetrics(t *testing.T) {
	_, _, rc := containerBerthd(t)
	logDir := t.TempDir()
	podCfg := podConfig("metrics")
	podCfg.LogDirectory = logDir
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "burner", func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000,
			CpuShares: 1024, MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 128 << 20}}
	}, "sh", "-c", "nc -l -p 8080 & (while :; do :; done) & ping -c 1 -W 1 10.201.0.1; echo ready; sleep 100000")
	waitLog(t, filepath.Join(logDir, "burner.log"), "ready")
	cg := "/berth/" + pod + "/" + id
	// At half a CPU, the burner has used 2 s of CPU after 4 s.
	for deadline := time.Now().Add(time.Minute); cpuUsage(t, cg) < 2e9; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the burner used only %d ns of CPU", cpuUsage(t, cg))
		}
	}
	pm, err := rc.ListPodSandboxMetrics(ctxT(t), &runtime.ListPodSandboxMetricsRequest{})
	if err != nil || len(pm.PodMetrics) != 1 || len(pm.PodMetrics[0].ContainerMetrics) != 1 {
		t.Fatalf("ListPodSandboxMetrics = %v, %v", pm, err)
	}
	ms := pm.PodMetrics[0].ContainerMetrics[0].Metrics
	metric := func(name string) *runtime.Metric {
		t.Helper()
		for _, m := range ms {
			if m.Name == name {
				return m
			}
		}
		t.Fatalf("no metric %s", name)
		return nil
	}
	value := func(name string) uint64 { return metric(name).Value.GetValue() }

	// At least three tasks (sh exec's its last command, sleep): nc, the loop and sleep.
	if threads, tasks := value("container_threads"), cgroupValue(t, cg, "pids", "pids.current", "pids.current", ""); threads != tasks || threads < 3 {
		t.Errorf("container_threads %d, pids.current %d", threads, tasks)
	}
	fds, sockets := procFDs(t, util.CgroupFile(t, "pids", cg, "cgroup.procs", "cgroup.procs"))
	if value("container_file_descriptors") != fds || value("container_sockets") != sockets || sockets < 1 {
		t.Errorf("fds %d sockets %d, /proc says %d and %d", value("container_file_descriptors"), value("container_sockets"), fds, sockets)
	}
	if user, sys, usage := value("container_cpu_user_seconds_total"), value("container_cpu_system_seconds_total"),
		value("container_cpu_usage_seconds_total"); usage < 2 || absDiff(user+sys, usage) > 1 {
		t.Errorf("user %d + system %d s, usage %d s", user, sys, usage)
	}
	periods := cgroupValue(t, cg, "cpu", "cpu.stat", "cpu.stat", "nr_periods")
	if p, thr := value("container_cpu_cfs_periods_total"), value("container_cpu_cfs_throttled_periods_total"); p == 0 || p > periods || thr == 0 || thr > p {
		t.Errorf("CFS periods %d, throttled %d, cpu.stat has %d", p, thr, periods)
	}
	if value("container_spec_cpu_period") != 100000 {
		t.Errorf("container_spec_cpu_period %d", value("container_spec_cpu_period"))
	}
	if !util.Unified() {
		if shares, swap := value("container_spec_cpu_shares"), value("container_spec_memory_swap_limit_bytes"); shares != cgroupValue(t, cg, "cpu", "cpu.shares", "", "") ||
			swap != cgroupValue(t, cg, "memory", "memory.memsw.limit_in_bytes", "", "") {
			t.Errorf("shares %d, swap limit %d", shares, swap)
		}
	}
	fsLimit := metric("container_fs_limit_bytes")
	var st unix.Statfs_t
	if err := unix.Statfs(fsLimit.LabelValues[len(fsLimit.LabelValues)-1], &st); err != nil || fsLimit.Value.GetValue() != st.Blocks*uint64(st.Bsize) {
		t.Errorf("container_fs_limit_bytes %v, statfs %d (%v)", fsLimit, st.Blocks*uint64(st.Bsize), err)
	}
	if free := value("container_fs_inodes_free"); free == 0 || free > st.Files {
		t.Errorf("container_fs_inodes_free %d of %d", free, st.Files)
	}
	var sent uint64
	for _, m := range pm.PodMetrics[0].Metrics {
		if m.Name == "container_network_transmit_packets_total" && m.LabelValues[len(m.LabelValues)-1] == "eth0" {
			sent = m.Value.GetValue()
		}
	}
	if sent == 0 {
		t.Error("no packets sent on eth0")
	}
}

// procFDs counts the open descriptors of the processes listed, and the
// sockets among them.
func procFDs(t *testing.T, procs string) (fds, sockets uint64) {
	t.Helper()
	for _, pid := range strings.Fields(procs) {
		entries, err := os.ReadDir("/proc/" + pid + "/fd")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			fds++
			if l, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name()); strings.HasPrefix(l, "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}
