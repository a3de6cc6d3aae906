package cri

import (
	"context"
	"time"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
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

// add adds a sample of a described metric, with the type it was described
// with.
func (m *metricSet) add(name string, value uint64, extra ...string) {
	m.metrics = append(m.metrics, &runtime.Metric{Name: name, Timestamp: m.at, MetricType: metricTypes[name],
		LabelValues: append(append([]string{}, m.base...), extra...), Value: &runtime.UInt64Value{Value: value}})
}

func (s *Server) podMetrics(ctx context.Context, p *sandbox.Pod) *runtime.PodSandboxMetrics {
	pm := &runtime.PodSandboxMetrics{PodSandboxId: p.ID}
	net := &metricSet{base: []string{p.ID, p.Spec.Name, ""}, at: time.Now().UnixNano()}
	if pin := p.Pins[sandbox.NetNS]; pin != "" {
		if ifaces, err := s.stats.Network(pin); err == nil {
			for _, i := range ifaces {
				net.add(mNetRxBytes, i.RxBytes, i.Name)
				net.add(mNetTxBytes, i.TxBytes, i.Name)
				net.add(mNetRxErrors, i.RxErrors, i.Name)
				net.add(mNetTxErrors, i.TxErrors, i.Name)
				net.add(mNetRxPackets, i.RxPackets, i.Name)
				net.add(mNetTxPackets, i.TxPackets, i.Name)
				net.add(mNetRxDropped, i.RxDropped, i.Name)
				net.add(mNetTxDropped, i.TxDropped, i.Name)
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
	s.addLayerMetrics(m, c.ID)
	if c.Resources != nil && c.Resources.MemoryLimit > 0 {
		m.add(mMemLimit, uint64(c.Resources.MemoryLimit))
	}
	if !c.StartedAt.IsZero() {
		m.add(mStartTime, uint64(c.StartedAt.Unix()))
	}
	m.add(mLastSeen, uint64(now.Unix()))
	return &runtime.ContainerMetrics{ContainerId: c.ID, Metrics: m.metrics}
}

// addLayerMetrics adds what the writable layer uses, and what its
// filesystem holds (labelled, as cAdvisor labels them, by device: here the
// snapshots directory).
func (s *Server) addLayerMetrics(m *metricSet, id string) {
	dir := s.snapshots.SnapshotsDir()
	if bytes, inodes, err := s.snapshots.SnapshotUsage(id); err == nil {
		m.add(mFsUsage, uint64(bytes), dir)
		m.add(mFsInodes, uint64(inodes), dir)
	}
	if size, free, err := s.stats.Filesystem(dir); err == nil {
		m.add(mFsLimit, size, dir)
		m.add(mFsInodesFree, free, dir)
	}
}
