package main

import (
	"fmt"
	"log"
	"slices"
	"strconv"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// procs says how to find a runtime's processes: the daemon's pid, and
// substrings of its shims', node-wide servers' and pauses' command lines
// (under: a path the shims' and servers' command lines hold).
type procs struct {
	daemon              int
	shim, server, pause string
	under               string
}

// all lists every process of the runtime: the daemon, its shims, servers
// and pauses.
func (p procs) all() []int {
	pids := []int{p.daemon}
	pids = append(pids, findShims(p.shim, p.under)...)
	pids = append(pids, findShims(p.server, p.under)...)
	return append(pids, findShims(p.pause, "")...)
}

// placed is one pod started by the density run.
type placed struct {
	pod, ctr string
	took     time.Duration
	err      error
}

// density starts n pods, each with one busybox sleep container, from
// clients concurrent clients (each doing what `crictl run` does: run the pod,
// create and start the container), then measures the runtime at that
// density: relisting, stats, the memory of all its processes; then stops
// and removes every pod from the same clients and reports what is left.
func (b *bench) density(n, clients int, p procs) {
	t0 := time.Now()
	started := fanOut(n, clients, func(i int) placed { return b.place(i) })
	wall := time.Since(t0)
	var times []time.Duration
	errs := 0
	for _, s := range started {
		if s.err != nil {
			errs++
			log.Printf("density: %v", s.err)
			continue
		}
		times = append(times, s.took)
	}
	fmt.Printf("density_pods %d density_clients %d density_errors %d\n", n, clients, errs)
	fmt.Printf("density_start_wall_ms %.1f\n", ms(wall))
	reportTail("density_pod_start", times)
	time.Sleep(2 * time.Second) // let the shims settle
	b.densityLists(n - errs)
	var rss, pss int
	pids := p.all()
	for _, pid := range pids {
		rss += rssKiB(pid)
		pss += pssKiB(pid)
	}
	fmt.Printf("density_runtime_procs %d density_rss_kib %d density_pss_kib %d\n", len(pids), rss, pss)
	t0 = time.Now()
	removed := fanOut(len(started), clients, func(i int) placed {
		s := started[i]
		if s.err != nil {
			return s
		}
		t := time.Now()
		err := b.unplace(s.pod)
		return placed{took: time.Since(t), err: err}
	})
	fmt.Printf("density_remove_wall_ms %.1f\n", ms(time.Since(t0)))
	var removeTimes []time.Duration
	for _, r := range removed {
		if r.err == nil {
			removeTimes = append(removeTimes, r.took)
		}
	}
	reportTail("density_stop_remove", removeTimes)
	b.densityLeftovers(p)
}

// fanOut runs job(0..n-1) from clients goroutines and returns the results
// by index.
func fanOut(n, clients int, job func(i int) placed) []placed {
	out := make([]placed, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = job(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// place runs pod i with a busybox sleep container, as `crictl run` does.
func (b *bench) place(i int) placed {
	name := "dense-" + strconv.Itoa(i)
	podCfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: "uid-" + name},
		Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: b.parent + "/" + name},
	}
	t0 := time.Now()
	p, err := b.rc.RunPodSandbox(b.ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		return placed{err: fmt.Errorf("RunPodSandbox %s: %w", name, err)}
	}
	c, err := b.rc.CreateContainer(b.ctx, &runtime.CreateContainerRequest{PodSandboxId: p.PodSandboxId, SandboxConfig: podCfg,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "sleep"}, Image: &runtime.ImageSpec{Image: b.image},
			Command: []string{"sleep", "100000"}}})
	if err != nil {
		return placed{pod: p.PodSandboxId, err: fmt.Errorf("CreateContainer in %s: %w", name, err)}
	}
	if _, err := b.rc.StartContainer(b.ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
		return placed{pod: p.PodSandboxId, err: fmt.Errorf("StartContainer in %s: %w", name, err)}
	}
	return placed{pod: p.PodSandboxId, ctr: c.ContainerId, took: time.Since(t0)}
}

// unplace stops and removes a pod as the kubelet does when it is deleted
// (the pod's stop kills its containers).
func (b *bench) unplace(pod string) error {
	if _, err := b.rc.StopPodSandbox(b.ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		return fmt.Errorf("StopPodSandbox %s: %w", pod, err)
	}
	if _, err := b.rc.RemovePodSandbox(b.ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		return fmt.Errorf("RemovePodSandbox %s: %w", pod, err)
	}
	return nil
}

// densityLists times what the kubelet polls at this density: the pod and
// container relists, and the stats lists.
func (b *bench) densityLists(running int) {
	var relist, ctrStats, podStats []time.Duration
	for range 20 {
		t0 := time.Now()
		pods, err := b.rc.ListPodSandbox(b.ctx, &runtime.ListPodSandboxRequest{})
		check("ListPodSandbox", err)
		ctrs, err := b.rc.ListContainers(b.ctx, &runtime.ListContainersRequest{})
		check("ListContainers", err)
		relist = append(relist, time.Since(t0))
		if len(pods.Items) < running || len(ctrs.Containers) < running {
			log.Fatalf("relist: %d pods, %d containers, want %d", len(pods.Items), len(ctrs.Containers), running)
		}
		t0 = time.Now()
		_, err = b.rc.ListContainerStats(b.ctx, &runtime.ListContainerStatsRequest{})
		check("ListContainerStats", err)
		ctrStats = append(ctrStats, time.Since(t0))
		t0 = time.Now()
		_, err = b.rc.ListPodSandboxStats(b.ctx, &runtime.ListPodSandboxStatsRequest{})
		check("ListPodSandboxStats", err)
		podStats = append(podStats, time.Since(t0))
	}
	reportTail("density_relist", relist)
	reportTail("density_list_container_stats", ctrStats)
	reportTail("density_list_pod_stats", podStats)
}

// densityLeftovers reports what is left once every pod was removed: pods,
// containers and shims.
func (b *bench) densityLeftovers(p procs) {
	pods, err := b.rc.ListPodSandbox(b.ctx, &runtime.ListPodSandboxRequest{})
	check("ListPodSandbox", err)
	ctrs, err := b.rc.ListContainers(b.ctx, &runtime.ListContainersRequest{})
	check("ListContainers", err)
	shims := findShims(p.shim, p.under)
	for deadline := time.Now().Add(30 * time.Second); len(shims) > 0 && time.Now().Before(deadline); shims = findShims(p.shim, p.under) {
		time.Sleep(100 * time.Millisecond) // shims exit once their pod is removed
	}
	fmt.Printf("density_left_pods %d density_left_containers %d density_left_shims %d\n", len(pods.Items), len(ctrs.Containers), len(shims))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportTail prints "<metric> p50 <ms> p99 <ms>".
func reportTail(metric string, d []time.Duration) {
	if len(d) == 0 {
		fmt.Printf("%s none\n", metric)
		return
	}
	fmt.Printf("%s p50 %.1f p99 %.1f\n", metric, ms(percentile(d, 0.5)), ms(percentile(d, 0.99)))
}

// percentile is the p-th (0..1) of d, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}
