package cri

import (
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/cgroups"
)

// Every metric has a descriptor, and a value for each of its label keys.
func TestMetricsMatchTheirDescriptors(t *testing.T) {
	m := &metricSet{base: []string{"id", "name", "image"}, at: 1}
	addCgroupMetrics(m, &cgroups.Stats{At: time.Unix(1, 0), CPUUsageNanos: 2_500_000_000, MemoryWorkingSet: 7, Processes: 3})
	m.add(mNetRxBytes, runtime.MetricType_COUNTER, 10, "eth0")
	m.add(mFsUsage, runtime.MetricType_GAUGE, 10, "/var/lib/berth")
	metricsByName := map[string]*runtime.MetricDescriptor{}
	for _, d := range metricDescs {
		metricsByName[d.Name] = d
	}
	values := map[string]uint64{}
	for _, metric := range m.metrics {
		d, ok := metricsByName[metric.Name]
		if !ok {
			t.Fatalf("%s has no descriptor", metric.Name)
		}
		if len(metric.LabelValues) != len(d.LabelKeys) {
			t.Fatalf("%s: %d label values for keys %v", metric.Name, len(metric.LabelValues), d.LabelKeys)
		}
		values[metric.Name] = metric.Value.Value
	}
	if values[mCPU] != 2 || values[mWorkingSet] != 7 || values[mProcesses] != 3 {
		t.Fatalf("values %v", values)
	}
	if len(metricDescs) != len(metricsByName) {
		t.Fatal("a metric is described twice")
	}
}
