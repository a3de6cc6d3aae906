package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/container"
)

// The metrics a kubelet serves as /metrics/cadvisor when it takes them from
// the runtime, named as cAdvisor names them. Every container metric is
// labelled id, name, image (and the extra key listed); pod network metrics
// carry the pod's id and name, and the interface.
var (
	baseLabels  = []string{"id", "name", "image"}
	metricDescs = []*runtime.MetricDescriptor{}
)

func describe(name, help string, extra ...string) string {
	metricDescs = append(metricDescs, &runtime.MetricDescriptor{Name: name, Help: help,
		LabelKeys: append(append([]string{}, baseLabels...), extra...)})
	return name
}

var (
	mCPU         = describe("container_cpu_usage_seconds_total", "Cumulative CPU time consumed, in seconds.", "cpu")
	mMemUsage    = describe("container_memory_usage_bytes", "Current memory usage, in bytes, page cache included.")
	mWorkingSet  = describe("container_memory_working_set_bytes", "Current working set, in bytes: usage less inactive file pages.")
	mRSS         = describe("container_memory_rss", "Size of RSS, in bytes.")
	mFaults      = describe("container_memory_failures_total", "Cumulative count of memory allocation failures.", "failure_type", "scope")
	mProcesses   = describe("container_processes", "Number of processes running inside the container.")
	mFsUsage     = describe("container_fs_usage_bytes", "Bytes used by the container's writable layer.", "device")
	mFsInodes    = describe("container_fs_inodes_total", "Inodes used by the container's writable layer.", "device")
	mMemLimit    = describe("container_spec_memory_limit_bytes", "Memory limit of the container, in bytes.")
	mStartTime   = describe("container_start_time_seconds", "Start time of the container since the Unix epoch, in seconds.")
	mLastSeen    = describe("container_last_seen", "Last time the runtime saw the container, since the Unix epoch, in seconds.")
	mNetRxBytes  = describe("container_network_receive_bytes_total", "Cumulative bytes received.", "interface")
	mNetTxBytes  = describe("container_network_transmit_bytes_total", "Cumulative bytes transmitted.", "interface")
	mNetRxErrors = describe("container_network_receive_errors_total", "Cumulative errors while receiving.", "interface")
	mNetTxErrors = describe("container_network_transmit_errors_total", "Cumulative errors while transmitting.", "interface")
)

// ListMetricDescriptors lists the metrics ListPodSandboxMetrics reports.
func (s *Server) ListMetricDescriptors(context.Context, *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	return &runtime.ListMetricDescriptorsResponse{Descriptors: metricDescs}, nil
}

// ListPodSandboxMetrics reports every ready pod's metrics: its network, and
// its created and running containers' CPU, memory, processes and writable
// layer, read as the stats RPCs read them.
func (s *Server) ListPodSandboxMetrics(ctx context.Context, _ *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	resp := &runtime.ListPodSandboxMetricsResponse{}
	for _, p := range s.pods.List() {
		if p.State == sandbox.Ready {
			resp.PodMetrics = append(resp.PodMetrics, s.podMetrics(ctx, p))
		}
	}
	return resp, nil
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *Server) StreamPodSandboxMetrics(_ *runtime.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	resp, err := s.ListPodSandboxMetrics(stream.Context(), &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		return err
	}
	return sendChunks(resp.PodMetrics, func(c []*runtime.PodSandboxMetrics) error {
		return stream.Send(&runtime.StreamPodSandboxMetricsResponse{PodSandboxMetrics: c})
	})
}

// metricSet builds one object's metrics, with its base label values.
type metricSet struct {
	base    []string
	at      int64
	metrics []*runtime.Metric
}

func (m *metricSet) add(name string, typ runtime.MetricType, value uint64, extra ...string) {
	m.metrics = append(m.metrics, &runtime.Metric{Name: name, Timestamp: m.at, MetricType: typ,
		LabelValues: append(append([]string{}, m.base...), extra...), Value: &runtime.UInt64Value{Value: value}})
}

func (s *Server) podMetrics(ctx context.Context, p *sandbox.Pod) *runtime.PodSandboxMetrics {
	pm := &runtime.PodSandboxMetrics{PodSandboxId: p.ID}
	net := &metricSet{base: []string{p.ID, p.Spec.Name, ""}, at: time.Now().UnixNano()}
	if pin := p.Pins[sandbox.NetNS]; pin != "" {
		if ifaces, err := s.stats.Network(pin); err == nil {
			for _, i := range ifaces {
				net.add(mNetRxBytes, runtime.MetricType_COUNTER, i.RxBytes, i.Name)
				net.add(mNetTxBytes, runtime.MetricType_COUNTER, i.TxBytes, i.Name)
				net.add(mNetRxErrors, runtime.MetricType_COUNTER, i.RxErrors, i.Name)
				net.add(mNetTxErrors, runtime.MetricType_COUNTER, i.TxErrors, i.Name)
			}
		}
	}
	pm.Metrics = net.metrics
	for _, c := range s.containers.List(func(c *container.Container) bool { return c.PodID == p.ID }) {
		if c.State == container.Created || c.State == container.Running {
			pm.ContainerMetrics = append(pm.ContainerMetrics, s.containerMetrics(ctx, c, p))
		}
	}
	return pm
}

func (s *Server) containerMetrics(ctx context.Context, c *container.Container, p *sandbox.Pod) *runtime.ContainerMetrics {
	now := time.Now()
	m := &metricSet{base: []string{c.ID, c.Name, c.Image}, at: now.UnixNano()}
	if cg := s.readCgroup(ctx, cgroupParent(p)+"/"+c.ID); cg != nil {
		addCgroupMetrics(m, cg)
	}
	if bytes, inodes, err := s.snapshots.SnapshotUsage(c.ID); err == nil {
		m.add(mFsUsage, runtime.MetricType_GAUGE, uint64(bytes), s.snapshots.SnapshotsDir())
		m.add(mFsInodes, runtime.MetricType_GAUGE, uint64(inodes), s.snapshots.SnapshotsDir())
	}
	if c.Resources != nil && c.Resources.MemoryLimit > 0 {
		m.add(mMemLimit, runtime.MetricType_GAUGE, uint64(c.Resources.MemoryLimit))
	}
	if !c.StartedAt.IsZero() {
		m.add(mStartTime, runtime.MetricType_GAUGE, uint64(c.StartedAt.Unix()))
	}
	m.add(mLastSeen, runtime.MetricType_GAUGE, uint64(now.Unix()))
	return &runtime.ContainerMetrics{ContainerId: c.ID, Metrics: m.metrics}
}

// addCgroupMetrics adds what a cgroup tells (CPU in whole seconds: CRI
// metric values are integers).
func addCgroupMetrics(m *metricSet, cg *cgroups.Stats) {
	m.add(mCPU, runtime.MetricType_COUNTER, cg.CPUUsageNanos/uint64(time.Second), "total")
	m.add(mMemUsage, runtime.MetricType_GAUGE, cg.MemoryUsage)
	m.add(mWorkingSet, runtime.MetricType_GAUGE, cg.MemoryWorkingSet)
	m.add(mRSS, runtime.MetricType_GAUGE, cg.MemoryRSS)
	m.add(mFaults, runtime.MetricType_COUNTER, cg.PageFaults, "pgfault", "container")
	m.add(mFaults, runtime.MetricType_COUNTER, cg.MajorPageFaults, "pgmajfault", "container")
	m.add(mProcesses, runtime.MetricType_GAUGE, cg.Processes)
}
