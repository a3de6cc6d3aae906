package cri

import (
	"slices"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/cgroups"
)

// The names critest v1.37 requires, and those it lets runtimes leave out
// (hugetlb, pressure, CPU quota, memory reservation, ulimits), with
// cAdvisor's types and label keys beyond id, name and image.
var cadvisorMetrics = map[string]struct {
	typ   runtime.MetricType
	extra []string
}{
	"container_blkio_device_usage_total":               {counter, []string{"device", "major", "minor", "operation"}},
	"container_cpu_cfs_periods_total":                  {counter, nil},
	"container_cpu_cfs_throttled_periods_total":        {counter, nil},
	"container_cpu_cfs_throttled_seconds_total":        {counter, nil},
	"container_cpu_system_seconds_total":               {counter, nil},
	"container_cpu_usage_seconds_total":                {counter, []string{"cpu"}},
	"container_cpu_user_seconds_total":                 {counter, nil},
	"container_file_descriptors":                       {gauge, nil},
	"container_fs_inodes_free":                         {gauge, []string{"device"}},
	"container_fs_inodes_total":                        {gauge, []string{"device"}},
	"container_fs_limit_bytes":                         {gauge, []string{"device"}},
	"container_fs_reads_bytes_total":                   {counter, []string{"device"}},
	"container_fs_reads_total":                         {counter, []string{"device"}},
	"container_fs_usage_bytes":                         {gauge, []string{"device"}},
	"container_fs_writes_bytes_total":                  {counter, []string{"device"}},
	"container_fs_writes_total":                        {counter, []string{"device"}},
	"container_last_seen":                              {gauge, nil},
	"container_memory_cache":                           {gauge, nil},
	"container_memory_failcnt":                         {counter, nil},
	"container_memory_failures_total":                  {counter, []string{"failure_type", "scope"}},
	"container_memory_kernel_usage":                    {gauge, nil},
	"container_memory_mapped_file":                     {gauge, nil},
	"container_memory_max_usage_bytes":                 {gauge, nil},
	"container_memory_rss":                             {gauge, nil},
	"container_memory_swap":                            {gauge, nil},
	"container_memory_usage_bytes":                     {gauge, nil},
	"container_memory_working_set_bytes":               {gauge, nil},
	"container_network_receive_bytes_total":            {counter, []string{"interface"}},
	"container_network_receive_errors_total":           {counter, []string{"interface"}},
	"container_network_receive_packets_dropped_total":  {counter, []string{"interface"}},
	"container_network_receive_packets_total":          {counter, []string{"interface"}},
	"container_network_transmit_bytes_total":           {counter, []string{"interface"}},
	"container_network_transmit_errors_total":          {counter, []string{"interface"}},
	"container_network_transmit_packets_dropped_total": {counter, []string{"interface"}},
	"container_network_transmit_packets_total":         {counter, []string{"interface"}},
	"container_oom_events_total":                       {counter, nil},
	"container_processes":                              {gauge, nil},
	"container_sockets":                                {gauge, nil},
	"container_spec_cpu_period":                        {gauge, nil},
	"container_spec_cpu_shares":                        {gauge, nil},
	"container_spec_memory_limit_bytes":                {gauge, nil},
	"container_spec_memory_swap_limit_bytes":           {gauge, nil},
	"container_start_time_seconds":                     {gauge, nil},
	"container_threads":                                {gauge, nil},
	"container_threads_max":                            {gauge, nil},
	"container_hugetlb_max_usage_bytes":                {gauge, []string{"pagesize"}},
	"container_hugetlb_usage_bytes":                    {gauge, []string{"pagesize"}},
	"container_pressure_cpu_stalled_seconds_total":     {counter, nil},
	"container_pressure_cpu_waiting_seconds_total":     {counter, nil},
	"container_pressure_io_stalled_seconds_total":      {counter, nil},
	"container_pressure_io_waiting_seconds_total":      {counter, nil},
	"container_pressure_memory_stalled_seconds_total":  {counter, nil},
	"container_pressure_memory_waiting_seconds_total":  {counter, nil},
	"container_spec_cpu_quota":                         {gauge, nil},
	"container_spec_memory_reservation_limit_bytes":    {gauge, nil},
	"container_ulimits_soft":                           {gauge, []string{"ulimit"}},
}

// Every name critest requires is described, with help, cAdvisor's type and
// its label keys; none twice.
func TestMetricDescriptorsAreCAdvisors(t *testing.T) {
	byName := map[string]*runtime.MetricDescriptor{}
	for _, d := range metricDescs {
		if byName[d.Name] != nil {
			t.Errorf("%s is described twice", d.Name)
		}
		byName[d.Name] = d
	}
	for name, want := range cadvisorMetrics {
		d := byName[name]
		if d == nil {
			t.Errorf("%s is not described", name)
			continue
		}
		if keys := append(append([]string{}, baseLabels...), want.extra...); d.Help == "" || !slices.Equal(d.LabelKeys, keys) {
			t.Errorf("%s: help %q, label keys %v, want %v", name, d.Help, d.LabelKeys, keys)
		}
		if metricTypes[name] != want.typ {
			t.Errorf("%s is a %v, want a %v", name, metricTypes[name], want.typ)
		}
	}
}

// A cgroup's stats become samples of their metrics, each with a value for
// every label key and the described type.
func TestCgroupMetrics(t *testing.T) {
	cg := &cgroups.Stats{At: time.Unix(1, 0), CPUUsageNanos: 2_500_000_000, MemoryWorkingSet: 7, Processes: 3,
		CPUUserNanos: 4_000_000_000, CPUSystemNanos: 1_900_000_000, CFSPeriods: 30, CFSThrottledPeriods: 4,
		CFSThrottledNanos: 3_000_000_000, MemoryCache: 11, MemoryFailcnt: 2, OOMKills: 1, Threads: 5, ThreadsMax: 64,
		FileDescriptors: 9, Sockets: 2, Spec: cgroups.Spec{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 1024, MemorySwapLimit: 1 << 26},
		BlockIO: []cgroups.DeviceIO{{Major: 253, Device: "/dev/vda", ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}}}
	m := &metricSet{base: []string{"id", "name", "image"}, at: 1}
	addCgroupMetrics(m, cg)
	values := samples(t, m)
	want := map[string]uint64{mCPU: 2, mCPUUser: 4, mCPUSystem: 1, mCFSPeriods: 30, mCFSThrottled: 4, mCFSThrSecs: 3,
		mWorkingSet: 7, mProcesses: 3, mCache: 11, mFailcnt: 2, mOOM: 1, mThreads: 5, mThreadsMax: 64, mFDs: 9, mSockets: 2,
		mSpecPeriod: 100000, mSpecShares: 1024, mSwapLimit: 1 << 26, mFsReadBytes: 4096, mFsWrites: 2,
		mBlkio + "/Read": 4096, mBlkio + "/Write": 8192}
	for name, v := range want {
		if values[name] != v {
			t.Errorf("%s = %d, want %d", name, values[name], v)
		}
	}
	// Without a quota, cAdvisor has no CFS figures.
	cg.Spec.CPUQuota = 0
	m = &metricSet{base: []string{"id", "name", "image"}, at: 1}
	addCgroupMetrics(m, cg)
	if _, ok := samples(t, m)[mCFSPeriods]; ok {
		t.Error("CFS periods reported without a quota")
	}
}

// What only some hosts have is reported where the stats have it (PSI µs
// as whole seconds, labelled by page size and ulimit name) and left out,
// not reported as 0, where they do not.
func TestHostOnlyMetrics(t *testing.T) {
	cg := &cgroups.Stats{
		Hugetlb: []cgroups.HugetlbUsage{{PageSize: "2MB", Usage: 4 << 20, MaxUsage: 6 << 20, HasMaxUsage: true}, {PageSize: "1GB"}},
		Pressure: map[string]cgroups.Pressure{"cpu": {SomeMicros: 3_500_000, FullMicros: 2_000_000, HasFull: true},
			"io": {SomeMicros: 7_000_000}},
		Spec:           cgroups.Spec{MemoryReservation: 1 << 20, HasMemoryReservation: true},
		OpenFilesLimit: 1024, HasOpenFilesLimit: true}
	m := &metricSet{base: []string{"id", "name", "image"}, at: 1}
	addCgroupMetrics(m, cg)
	samples(t, m) // labels and types
	got := map[string]uint64{}
	for _, s := range m.metrics {
		got[s.Name+"/"+s.LabelValues[len(s.LabelValues)-1]] = s.Value.Value
	}
	want := map[string]uint64{mHugetlbUsage + "/2MB": 4 << 20, mHugetlbMax + "/2MB": 6 << 20, mHugetlbUsage + "/1GB": 0,
		"container_pressure_cpu_waiting_seconds_total/image": 3, "container_pressure_cpu_stalled_seconds_total/image": 2,
		"container_pressure_io_waiting_seconds_total/image": 7, mMemReserve + "/image": 1 << 20, mUlimitsSoft + "/max_open_files": 1024}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %d (reported %v), want %d", k, g, ok, v)
		}
	}
	for _, k := range []string{mHugetlbMax + "/1GB", "container_pressure_io_stalled_seconds_total/image",
		"container_pressure_memory_waiting_seconds_total/image", "container_pressure_memory_stalled_seconds_total/image"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s reported without data", k)
		}
	}
	m = &metricSet{base: []string{"id", "name", "image"}, at: 1}
	addCgroupMetrics(m, &cgroups.Stats{})
	for _, s := range m.metrics {
		if s.Name == mMemReserve || s.Name == mUlimitsSoft || s.Name == mHugetlbUsage || strings.HasPrefix(s.Name, "container_pressure_") {
			t.Errorf("%s reported without data", s.Name)
		}
	}
}

// samples checks every sample against its descriptor and returns the
// values by name (blkio by name/operation).
func samples(t *testing.T, m *metricSet) map[string]uint64 {
	t.Helper()
	byName := map[string]*runtime.MetricDescriptor{}
	for _, d := range metricDescs {
		byName[d.Name] = d
	}
	values := map[string]uint64{}
	for _, s := range m.metrics {
		d := byName[s.Name]
		if d == nil {
			t.Fatalf("%s has no descriptor", s.Name)
		}
		if len(s.LabelValues) != len(d.LabelKeys) || s.MetricType != metricTypes[s.Name] {
			t.Fatalf("%s: %v %d label values for keys %v", s.Name, s.MetricType, len(s.LabelValues), d.LabelKeys)
		}
		key := s.Name
		if s.Name == mBlkio {
			key += "/" + s.LabelValues[len(s.LabelValues)-1]
		}
		values[key] = s.Value.Value
	}
	return values
}
