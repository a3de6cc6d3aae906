package cri

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cni"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/container"
)

// StatsReader reads resource use (sandbox.StatsReader).
type StatsReader interface {
	Cgroup(path string) (*cgroups.Stats, error)
	Network(netnsPin string) ([]sandbox.InterfaceStats, error)
	// Filesystem is the size and free inodes of the filesystem holding path.
	Filesystem(path string) (sizeBytes, inodesFree uint64, err error)
}

// ContainerStats reports one container's resource use.
func (s *Server) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	c, err := s.containers.Find(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	p, err := s.pods.Get(c.PodID)
	if err != nil {
		return nil, err
	}
	return &runtime.ContainerStatsResponse{Stats: s.containerStats(ctx, c, p)}, nil
}

// ListContainerStats reports the resource use of the containers the filter
// (id prefix, pod, labels) selects.
func (s *Server) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	f := req.GetFilter()
	filter := &runtime.ContainerFilter{Id: f.GetId(), PodSandboxId: f.GetPodSandboxId(), LabelSelector: f.GetLabelSelector()}
	resp := &runtime.ListContainerStatsResponse{}
	for _, c := range s.containers.List(func(c *container.Container) bool { return containerMatches(c, filter) }) {
		if p, err := s.pods.Get(c.PodID); err == nil {
			resp.Stats = append(resp.Stats, s.containerStats(ctx, c, p))
		}
	}
	return resp, nil
}

// PodSandboxStats reports a pod's resource use: its cgroup, its network
// interfaces and its containers.
func (s *Server) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	p, err := s.pods.Find(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtime.PodSandboxStatsResponse{Stats: s.podStats(ctx, p)}, nil
}

// ListPodSandboxStats reports the resource use of the pods the filter (id
// prefix, labels) selects.
func (s *Server) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	f := req.GetFilter()
	filter := &runtime.PodSandboxFilter{Id: f.GetId(), LabelSelector: f.GetLabelSelector()}
	resp := &runtime.ListPodSandboxStatsResponse{}
	for _, p := range s.pods.List() {
		if podMatches(p, filter) {
			resp.Stats = append(resp.Stats, s.podStats(ctx, p))
		}
	}
	return resp, nil
}

// containerStats reads a container's cgroup (while it is created or
// running: an exited container's cgroup is gone) and its writable layer.
func (s *Server) containerStats(ctx context.Context, c *container.Container, p *sandbox.Pod) *runtime.ContainerStats {
	st := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: c.ID,
		Metadata: &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}, Labels: c.Labels, Annotations: c.Annotations}}
	if c.State == container.Created || c.State == container.Running {
		if cg := s.readCgroup(ctx, cgroupParent(p)+"/"+c.ID); cg != nil {
			var limit int64
			if c.Resources != nil {
				limit = c.Resources.MemoryLimit
			}
			st.Cpu, st.Memory = s.cpuUsage(c.ID, cg), memoryUsage(cg, limit)
		}
	}
	if bytes, inodes, err := s.snapshots.SnapshotUsage(c.ID); err == nil {
		st.WritableLayer = fsUsage(time.Now().UnixNano(), s.snapshots.SnapshotsDir(), bytes, inodes)
	}
	return st
}

func (s *Server) podStats(ctx context.Context, p *sandbox.Pod) *runtime.PodSandboxStats {
	md := podMetadata(p)
	linux := &runtime.LinuxPodSandboxStats{}
	if p.State == sandbox.Ready {
		if cg := s.readCgroup(ctx, cgroupParent(p)); cg != nil {
			linux.Cpu, linux.Memory = s.cpuUsage(p.ID, cg), memoryUsage(cg, 0)
			linux.Process = &runtime.ProcessUsage{Timestamp: cg.At.UnixNano(), ProcessCount: &runtime.UInt64Value{Value: cg.Processes}}
		}
		if pin := p.Pins[sandbox.NetNS]; pin != "" {
			linux.Network = s.networkUsage(ctx, pin)
		}
	}
	for _, c := range s.containers.List(func(c *container.Container) bool { return c.PodID == p.ID }) {
		linux.Containers = append(linux.Containers, s.containerStats(ctx, c, p))
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{Id: p.ID, Metadata: md, Labels: p.Spec.Labels, Annotations: p.Spec.Annotations},
		Linux:      linux,
	}
}

// readCgroup reads a cgroup's stats; a cgroup that is gone (the container
// just exited) has none.
func (s *Server) readCgroup(ctx context.Context, path string) *cgroups.Stats {
	cg, err := s.stats.Cgroup(path)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).WithField("cgroup", path).Warn("read cgroup stats")
		}
		return nil
	}
	return cg
}

func (s *Server) cpuUsage(id string, cg *cgroups.Stats) *runtime.CpuUsage {
	u := &runtime.CpuUsage{Timestamp: cg.At.UnixNano(), UsageCoreNanoSeconds: &runtime.UInt64Value{Value: cg.CPUUsageNanos}}
	if rate, ok := s.cpuSamples.rate(id, cg.CPUUsageNanos, cg.At); ok {
		u.UsageNanoCores = &runtime.UInt64Value{Value: rate}
	}
	return u
}

// memoryUsage is the kubelet's view of memory: with a limit, what is left
// of it above the working set is available.
func memoryUsage(cg *cgroups.Stats, limit int64) *runtime.MemoryUsage {
	m := &runtime.MemoryUsage{Timestamp: cg.At.UnixNano(), WorkingSetBytes: &runtime.UInt64Value{Value: cg.MemoryWorkingSet},
		UsageBytes: &runtime.UInt64Value{Value: cg.MemoryUsage}, RssBytes: &runtime.UInt64Value{Value: cg.MemoryRSS},
		PageFaults: &runtime.UInt64Value{Value: cg.PageFaults}, MajorPageFaults: &runtime.UInt64Value{Value: cg.MajorPageFaults}}
	if limit > 0 {
		avail := uint64(0)
		if uint64(limit) > cg.MemoryWorkingSet {
			avail = uint64(limit) - cg.MemoryWorkingSet
		}
		m.AvailableBytes = &runtime.UInt64Value{Value: avail}
	}
	return m
}

func (s *Server) networkUsage(ctx context.Context, pin string) *runtime.NetworkUsage {
	ifaces, err := s.stats.Network(pin)
	if err != nil {
		log.G(ctx).WithError(err).Warn("read pod network stats")
		return nil
	}
	n := &runtime.NetworkUsage{Timestamp: time.Now().UnixNano()}
	for _, i := range ifaces {
		u := &runtime.NetworkInterfaceUsage{Name: i.Name, RxBytes: &runtime.UInt64Value{Value: i.RxBytes},
			RxErrors: &runtime.UInt64Value{Value: i.RxErrors}, TxBytes: &runtime.UInt64Value{Value: i.TxBytes},
			TxErrors: &runtime.UInt64Value{Value: i.TxErrors}}
		if i.Name == cni.PodInterface {
			n.DefaultInterface = u
		}
		n.Interfaces = append(n.Interfaces, u)
	}
	return n
}

// cpuSamples keep each container's and pod's last CPU reading, so that
// usage_nano_cores comes from two samples, as the kubelet expects.
type cpuSamples struct {
	mu   sync.Mutex
	last map[string]cpuSample
}

type cpuSample struct {
	usage uint64
	at    time.Time
}

// rate records a reading and returns the CPU use since the previous one, in
// nanoseconds of CPU per second.
func (c *cpuSamples) rate(id string, usage uint64, at time.Time) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	prev, ok := c.last[id]
	c.last[id] = cpuSample{usage, at}
	if !ok || !at.After(prev.at) || usage < prev.usage {
		return 0, false
	}
	return uint64(float64(usage-prev.usage) / at.Sub(prev.at).Seconds()), true
}

func (c *cpuSamples) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.last, id)
}
