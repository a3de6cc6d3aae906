package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
	}, "sh", "-c", "ulimit -S -n 777; nc -l -p 8080 & (while :; do :; done) & ping -c 1 -W 1 10.201.0.1; echo ready; sleep 100000")
	waitLog(t, filepath.Join(logDir, "burner.log"), "ready")
	cg := "/berth/" + pod + "/" + id
	// At half a CPU, the burner has used 2 s of CPU after 4 s.
	for deadline := time.Now().Add(time.Minute); cpuUsage(t, cg) < 2e9; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the burner used only %d ns of CPU", cpuUsage(t, cg))
		}
	}
	// The container's file descriptors, read from /proc around the metrics
	// call: a process may open or close one meanwhile (the metric must then
	// lie between the two readings).
	procs := util.CgroupFile(t, "pids", cg, "cgroup.procs", "cgroup.procs")
	fdsBefore, socketsBefore := procFDs(t, procs)
	pm, err := rc.ListPodSandboxMetrics(ctxT(t), &runtime.ListPodSandboxMetricsRequest{})
	fdsAfter, socketsAfter := procFDs(t, procs)
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
	if fds, sockets := value("container_file_descriptors"), value("container_sockets"); !between(fds, fdsBefore, fdsAfter) ||
		!between(sockets, socketsBefore, socketsAfter) || sockets < 1 {
		t.Errorf("fds %d sockets %d, /proc says %d and %d before the call, %d and %d after; pids before the call: %s; the cgroup now (pid, command, fds): %s",
			fds, sockets, fdsBefore, socketsBefore, fdsAfter, socketsAfter, procs, describeFDs(cg))
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
	checkHostOnlyMetrics(t, cg, ms)
}

// Berth's own metrics endpoint counts calls, pulls (with their bytes and
// layers), pods and containers.
func TestMetricsEndpoint(t *testing.T) {
	bin := util.RequireIntegration(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b := util.NewBerthd(t, "[metrics]\naddress = \""+addr+"\"\n\n"+mirrorConfig(testRegistry(t)))
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	before := scrape(t, addr)
	for _, name := range []string{`berth_image_pulls_total{result="ok"}`, `berth_image_pull_fetched_bytes_total`, `berth_image_pulls_in_progress`} {
		if v, ok := before[name]; !ok || v != 0 {
			t.Errorf("before any pull: %s = %v (reported %v), want 0", name, v, ok)
		}
	}
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/none:1"}}); err == nil {
		t.Fatal("pull of a missing image succeeded")
	}
	// The bytes fetched are the busybox layers' blobs, each read once.
	st, err := ic.ImageStatus(ctxT(t), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: busyboxImage}, Verbose: true})
	if err != nil || st.Image == nil {
		t.Fatalf("ImageStatus = %v, %v", st, err)
	}
	var info struct {
		Manifest struct {
			Layers []struct {
				Size int64 `json:"size"`
			} `json:"layers"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || len(info.Manifest.Layers) == 0 {
		t.Fatalf("image info: %v\n%s", err, st.Info["info"])
	}
	var layerBytes int64
	for _, l := range info.Manifest.Layers {
		layerBytes += l.Size
	}
	podCfg := podConfig("metrics")
	pod := runPod(t, rc, podCfg)
	startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	got := scrape(t, addr)
	for name, want := range map[string]float64{
		`berth_cri_call_duration_seconds_count{code="OK",method="PullImage"}`:       1,
		`berth_cri_call_duration_seconds_count{code="NotFound",method="PullImage"}`: 1,
		`berth_cri_call_duration_seconds_count{code="OK",method="RunPodSandbox"}`:   1,
		`berth_image_pulls_total{result="ok"}`:                                      1,
		`berth_image_pulls_total{result="failed"}`:                                  1,
		`berth_image_pulls_total{result="disk_full"}`:                               0,
		`berth_image_pull_duration_seconds_count{result="ok"}`:                      1,
		`berth_image_pull_layers_total{how="fetched"}`:                              float64(len(info.Manifest.Layers)),
		`berth_image_pull_layer_duration_seconds_count{result="ok"}`:                float64(len(info.Manifest.Layers)),
		`berth_image_pull_fetched_bytes_total`:                                      float64(layerBytes),
		`berth_image_pull_resumes_total`:                                            0,
		`berth_image_pulls_in_progress`:                                             0,
		`berth_pods{state="READY"}`:                                                 1,
		`berth_containers{state="RUNNING"}`:                                         1,
		`berth_shims`:                                                               1,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (reported %v), want %v", name, v, ok, want)
		}
	}
	if _, ok := got["go_goroutines"]; !ok {
		t.Error("no go_goroutines: the Go collector is missing")
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// scrape reads Berth's metrics endpoint: each sample's value by its name
// and labels as the text format has them.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v\n%s", resp.Status, err, body)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// checkHostOnlyMetrics checks the metrics only some hosts have against the
// files they come from, and that they are left out where a file is missing.
func checkHostOnlyMetrics(t *testing.T, cg string, ms []*runtime.Metric) {
	t.Helper()
	find := func(name, label string) *runtime.Metric {
		for _, m := range ms {
			if m.Name == name && (label == "" || m.LabelValues[len(m.LabelValues)-1] == label) {
				return m
			}
		}
		return nil
	}
	// The root process is the container's sh, exec'd into its last command.
	var root string
	for _, pid := range strings.Fields(util.CgroupFile(t, "pids", cg, "cgroup.procs", "cgroup.procs")) {
		if comm, _ := os.ReadFile("/proc/" + pid + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
			root = pid
		}
	}
	limits, err := os.ReadFile("/proc/" + root + "/limits")
	if err != nil {
		t.Fatalf("root process %q: %v", root, err)
	}
	if m := find("container_ulimits_soft", "max_open_files"); m == nil || m.Value.GetValue() != 777 ||
		limitLine(string(limits), "Max open files")[0] != fmt.Sprint(m.Value.GetValue()) {
		t.Errorf("container_ulimits_soft %v, /proc/%s/limits:\n%s", m, root, limits)
	}
	reservation := cgroupValue(t, cg, "memory", "memory.soft_limit_in_bytes", "memory.min", "")
	if reservation > 1<<62 { // no limit: 0, as cAdvisor has it
		reservation = 0
	}
	if m := find("container_spec_memory_reservation_limit_bytes", ""); m == nil || m.Value.GetValue() != reservation {
		t.Errorf("container_spec_memory_reservation_limit_bytes %v, the cgroup says %d", m, reservation)
	}
	hugetlbDir, psiDir := "/sys/fs/cgroup/hugetlb"+cg, "/sys/fs/cgroup/cpuacct"+cg
	if util.Unified() {
		hugetlbDir, psiDir = "/sys/fs/cgroup"+cg, "/sys/fs/cgroup"+cg
	}
	hugetlbFile := filepath.Join(hugetlbDir, "hugetlb.2MB.usage_in_bytes")
	if util.Unified() {
		hugetlbFile = filepath.Join(hugetlbDir, "hugetlb.2MB.current")
	}
	if data, err := os.ReadFile(hugetlbFile); err != nil && find("container_hugetlb_usage_bytes", "") != nil ||
		err == nil && fmt.Sprint(find("container_hugetlb_usage_bytes", "2MB").GetValue().GetValue()) != strings.TrimSpace(string(data)) {
		t.Errorf("container_hugetlb_usage_bytes %v, %s: %q %v", find("container_hugetlb_usage_bytes", ""), hugetlbFile, data, err)
	}
	for _, res := range []string{"cpu", "memory", "io"} {
		m := find("container_pressure_"+res+"_waiting_seconds_total", "")
		data, err := os.ReadFile(filepath.Join(psiDir, res+".pressure"))
		if err != nil {
			if m != nil {
				t.Errorf("%s without a pressure file: %v", m.Name, m)
			}
			continue
		}
		total, _ := strconv.ParseUint(strings.TrimPrefix(limitLine(string(data), "some")[3], "total="), 10, 64)
		if m == nil || m.Value.GetValue() > total/1e6 {
			t.Errorf("%s pressure waiting %v, the cgroup has %d µs later", res, m, total)
		}
	}
}

// limitLine is the fields after prefix of the first line of text that
// starts with it, at least four (empty ones added).
func limitLine(text, prefix string) []string {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return append(strings.Fields(rest), make([]string, 4)...)
		}
	}
	return make([]string, 4)
}

// procFDs counts the open descriptors of the processes listed, and the
// sockets among them.
// between says whether v lies between a and b (in either order).
func between(v, a, b uint64) bool { return min(a, b) <= v && v <= max(a, b) }

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

// describeFDs lists the processes of a container's cgroup with their open
// files, for a failure's message.
func describeFDs(cg string) string {
	data, _ := os.ReadFile(cgroupProcsFile(cg))
	var out []string
	for _, pid := range strings.Fields(string(data)) {
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		entries, _ := os.ReadDir("/proc/" + pid + "/fd")
		var fds []string
		for _, e := range entries {
			target, _ := os.Readlink("/proc/" + pid + "/fd/" + e.Name())
			fds = append(fds, e.Name()+"="+target)
		}
		out = append(out, fmt.Sprintf("%s %q %v", pid, strings.ReplaceAll(string(cmd), "\x00", " "), fds))
	}
	return strings.Join(out, "; ")
}

func cgroupProcsFile(cg string) string {
	if util.Unified() {
		return "/sys/fs/cgroup" + cg + "/cgroup.procs"
	}
	return "/sys/fs/cgroup/pids" + cg + "/cgroup.procs"
}
