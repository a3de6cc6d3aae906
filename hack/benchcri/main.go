// Command benchcri measures a CRI runtime the way the kubelet uses it, over
// its gRPC socket, so that Berth and its peers are measured alike
// (hack/bench-pods.sh runs it against each):
//
//   - pod start: RunPodSandbox + CreateContainer + StartContainer of a busybox
//     "sleep" container (StartContainer returns once it runs), per cycle;
//   - stop+remove: StopContainer (timeout 0) + RemoveContainer +
//     StopPodSandbox + RemovePodSandbox;
//   - ExecSync of /bin/true in a running container;
//   - resident memory (RSS, and PSS for shims) of the daemon and of each shim
//     with -hold pods running
//     (shims found by -shim, a substring of their command line, and -under,
//     a path their command line holds), then of each pause process (found by
//     -pause) with one more pod whose containers share a PID namespace;
//   - ListContainerStats and ListPodSandboxStats with -stats containers
//     running in the held pods (the kubelet polls them).
//
// With -density N it measures instead N pods started at once by -clients
// clients (wall time, per-pod p50 / p99, errors, relist and stats latency,
// the memory of all the runtime's processes, concurrent stop + remove, what
// is left); with -soak D it churns pods from -clients clients for D and
// reports the daemon's and shims' memory and open fds, first minute against
// last.
//
// Each figure is printed as "<metric> p50 <ms> p90 <ms>" or "<metric> <KiB>".
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type bench struct {
	ctx     context.Context
	rc      runtime.RuntimeServiceClient
	image   string
	parent  string
	seq     int
	configs map[string]*runtime.PodSandboxConfig // by pod
}

func main() {
	socket := flag.String("socket", "", "the runtime's CRI socket")
	image := flag.String("image", "", "a busybox image, already pulled")
	parent := flag.String("cgroup-parent", "/berth-bench", "cgroup parent of the pods")
	cycles := flag.Int("cycles", 50, "pod start / stop cycles")
	execs := flag.Int("execs", 100, "ExecSync calls")
	hold := flag.Int("hold", 10, "pods held running while memory is measured")
	daemon := flag.Int("daemon-pid", 0, "the runtime daemon's pid")
	shim := flag.String("shim", "", "substring of a shim's command line")
	pause := flag.String("pause", "", "substring of a pause process's command line")
	server := flag.String("server", "", "substring of the command line of a runtime's node-wide helper server")
	under := flag.String("under", "", "path a shim's command line holds")
	statsFor := flag.Int("stats", 100, "containers running while stats are listed")
	density := flag.Int("density", 0, "instead: start this many pods at once from -clients clients, measure, remove them")
	soak := flag.Duration("soak", 0, "instead: churn pods from -clients clients this long, sampling memory and fds")
	clients := flag.Int("clients", 10, "concurrent clients of -density and -soak")
	flag.Parse()
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	c, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b := &bench{ctx: c, rc: runtime.NewRuntimeServiceClient(conn), image: *image, parent: *parent,
		configs: map[string]*runtime.PodSandboxConfig{}}
	p := procs{daemon: *daemon, shim: *shim, server: *server, pause: *pause, under: *under}
	switch {
	case *density > 0:
		b.density(*density, *clients, p)
		return
	case *soak > 0:
		b.soak(*soak, 10*time.Second, *clients, p)
		return
	}
	var start, stop []time.Duration
	for range *cycles {
		pod, ctr, took := b.startPod()
		start = append(start, took)
		stop = append(stop, b.stopPod(pod, ctr))
	}
	report("pod_start", start)
	report("stop_remove", stop)
	pod, ctr, _ := b.startPod()
	var execTimes []time.Duration
	for range *execs {
		t0 := time.Now()
		resp, err := b.rc.ExecSync(b.ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"/bin/true"}, Timeout: 10})
		if err != nil || resp.ExitCode != 0 {
			log.Fatalf("ExecSync: %v %v", resp, err)
		}
		execTimes = append(execTimes, time.Since(t0))
	}
	report("exec_sync", execTimes)
	held := [][2]string{{pod, ctr}}
	for len(held) < *hold {
		p, c, _ := b.startPod()
		held = append(held, [2]string{p, c})
	}
	time.Sleep(2 * time.Second) // let the shims settle
	fmt.Printf("daemon_rss_kib %d\n", rssKiB(*daemon))
	reportMemory("server", findShims(*server, *under))
	reportMemory("shim", findShims(*shim, *under))
	if *pause != "" {
		b.measurePauses(*pause)
	}
	extra := b.listStats(held, *statsFor)
	for _, h := range held {
		for _, c := range extra[h[0]] {
			b.removeContainer(c)
		}
		b.stopPod(h[0], h[1])
	}
}

// measurePauses runs one more pod, whose containers share a PID namespace,
// and reports the memory of the pause processes then running (one per pod
// where a runtime runs a pause in every pod).
func (b *bench) measurePauses(match string) {
	pod, ctr, _ := b.startPodWith(runtime.NamespaceMode_POD)
	time.Sleep(time.Second)
	reportMemory("pause", findShims(match, ""))
	b.stopPod(pod, ctr)
}

// reportMemory prints the average RSS and PSS of the processes pids, as
// "<kind>s N <kind>_rss_kib_avg R <kind>_pss_kib_avg P" (nothing if none).
func reportMemory(kind string, pids []int) {
	if len(pids) == 0 {
		return
	}
	var rss, pss int
	for _, pid := range pids {
		rss += rssKiB(pid)
		pss += pssKiB(pid)
	}
	n := len(pids)
	fmt.Printf("%ss %d %s_rss_kib_avg %d %s_pss_kib_avg %d\n", kind, n, kind, rss/n, kind, pss/n)
}

// listStats adds containers to the held pods until n run, then times the
// stats lists. It returns the containers it added, by pod.
func (b *bench) listStats(held [][2]string, n int) map[string][]string {
	extra := map[string][]string{}
	for i := len(held); i < n; i++ {
		pod := held[i%len(held)][0]
		extra[pod] = append(extra[pod], b.addContainer(pod, fmt.Sprint("extra-", i)))
	}
	var ctrTimes, podTimes []time.Duration
	for range 20 {
		t0 := time.Now()
		resp, err := b.rc.ListContainerStats(b.ctx, &runtime.ListContainerStatsRequest{})
		check("ListContainerStats", err)
		if len(resp.Stats) < n {
			log.Fatalf("ListContainerStats listed %d containers, want %d", len(resp.Stats), n)
		}
		ctrTimes = append(ctrTimes, time.Since(t0))
		t0 = time.Now()
		_, err = b.rc.ListPodSandboxStats(b.ctx, &runtime.ListPodSandboxStatsRequest{})
		check("ListPodSandboxStats", err)
		podTimes = append(podTimes, time.Since(t0))
	}
	report(fmt.Sprintf("list_container_stats_%d", n), ctrTimes)
	report(fmt.Sprintf("list_pod_stats_%d", len(held)), podTimes)
	return extra
}

func (b *bench) startPod() (pod, ctr string, took time.Duration) {
	return b.startPodWith(runtime.NamespaceMode_CONTAINER)
}

// startPodWith starts a pod whose containers have the PID namespace mode
// pid, and a busybox sleep container in it.
func (b *bench) startPodWith(pid runtime.NamespaceMode) (pod, ctr string, took time.Duration) {
	b.seq++
	name := "bench-" + strconv.Itoa(b.seq)
	podCfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: b.parent + "/" + name,
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: pid}}},
	}
	t0 := time.Now()
	p, err := b.rc.RunPodSandbox(b.ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		log.Fatalf("RunPodSandbox: %v", err)
	}
	b.configs[p.PodSandboxId] = podCfg
	ctr = b.addContainer(p.PodSandboxId, "sleep")
	return p.PodSandboxId, ctr, time.Since(t0)
}

// addContainer creates and starts a busybox sleep container in pod, in the
// pod's PID namespace mode.
func (b *bench) addContainer(pod, name string) string {
	pid := b.configs[pod].GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
	c, err := b.rc.CreateContainer(b.ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: b.configs[pod],
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: b.image},
			Command: []string{"sleep", "100000"},
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: pid}}}}})
	if err != nil {
		log.Fatalf("CreateContainer: %v", err)
	}
	if _, err := b.rc.StartContainer(b.ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		log.Fatalf("StartContainer: %v", err)
	}
	return c.ContainerId
}

func (b *bench) removeContainer(ctr string) {
	_, err := b.rc.StopContainer(b.ctx, &runtime.StopContainerRequest{ContainerId: ctr})
	check("StopContainer", err)
	_, err = b.rc.RemoveContainer(b.ctx, &runtime.RemoveContainerRequest{ContainerId: ctr})
	check("RemoveContainer", err)
}

func (b *bench) stopPod(pod, ctr string) time.Duration {
	t0 := time.Now()
	b.removeContainer(ctr)
	_, err := b.rc.StopPodSandbox(b.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
	check("StopPodSandbox", err)
	_, err = b.rc.RemovePodSandbox(b.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
	check("RemovePodSandbox", err)
	return time.Since(t0)
}

func check(call string, err error) {
	if err != nil {
		log.Fatalf("%s: %v", call, err)
	}
}

func report(metric string, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	pct := func(p float64) float64 {
		i := int(float64(len(d))*p+0.5) - 1
		return float64(d[max(0, min(i, len(d)-1))].Microseconds()) / 1000
	}
	fmt.Printf("%s p50 %.1f p90 %.1f\n", metric, pct(0.5), pct(0.9))
}

// rssKiB is a process's resident memory, shared file pages included.
func rssKiB(pid int) int { return procKiB(fmt.Sprintf("/proc/%d/status", pid), "VmRSS:") }

// pssKiB is its proportional share: pages shared with the other shims (the
// binary's) count in part.
func pssKiB(pid int) int { return procKiB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:") }

func procKiB(file, key string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}

// findShims lists the processes (but benchcri) whose command line holds
// match and under.
func findShims(match, under string) []int {
	if match == "" {
		return nil
	}
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, _ := os.ReadFile(p)
		cmd := strings.ReplaceAll(string(data), "\x00", " ")
		if strings.Contains(cmd, match) && strings.Contains(cmd, under) {
			// (Not benchcri itself, whose flags hold both.)
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil && pid != os.Getpid() {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
