package cri

import (
	"fmt"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/cgroups"
)

// The metrics a kubelet serves as /metrics/cadvisor when it takes them from
// the runtime, named, typed and helped as cAdvisor's
// metrics/prometheus.go has them. Every container metric is labelled id,
// name, image (and the extra keys listed); pod network metrics carry the
// pod's id and name, and the interface.
var (
	baseLabels  = []string{"id", "name", "image"}
	metricDescs = []*runtime.MetricDescriptor{}
	metricTypes = map[string]runtime.MetricType{}
)

const (
	counter = runtime.MetricType_COUNTER
	gauge   = runtime.MetricType_GAUGE
)

func describe(name string, typ runtime.MetricType, help string, extra ...string) string {
	metricDescs = append(metricDescs, &runtime.MetricDescriptor{Name: name, Help: help,
		LabelKeys: append(append([]string{}, baseLabels...), extra...)})
	metricTypes[name] = typ
	return name
}

var (
	mCPU          = describe("container_cpu_usage_seconds_total", counter, "Cumulative cpu time consumed in seconds.", "cpu")
	mCPUUser      = describe("container_cpu_user_seconds_total", counter, "Cumulative user cpu time consumed in seconds.")
	mCPUSystem    = describe("container_cpu_system_seconds_total", counter, "Cumulative system cpu time consumed in seconds.")
	mCFSPeriods   = describe("container_cpu_cfs_periods_total", counter, "Number of elapsed enforcement period intervals.")
	mCFSThrottled = describe("container_cpu_cfs_throttled_periods_total", counter, "Number of throttled period intervals.")
	mCFSThrSecs   = describe("container_cpu_cfs_throttled_seconds_total", counter, "Total time duration the container has been throttled.")
	mMemUsage     = describe("container_memory_usage_bytes", gauge, "Current memory usage in bytes, including all memory regardless of when it was accessed")
	mWorkingSet   = describe("container_memory_working_set_bytes", gauge, "Current working set in bytes.")
	mRSS          = describe("container_memory_rss", gauge, "Size of RSS in bytes.")
	mCache        = describe("container_memory_cache", gauge, "Number of bytes of page cache memory.")
	mMapped       = describe("container_memory_mapped_file", gauge, "Size of memory mapped files in bytes.")
	mKernel       = describe("container_memory_kernel_usage", gauge, "Size of kernel memory allocated in bytes.")
	mSwap         = describe("container_memory_swap", gauge, "Container swap usage in bytes.")
	mMaxUsage     = describe("container_memory_max_usage_bytes", gauge, "Maximum memory usage recorded in bytes")
	mFailcnt      = describe("container_memory_failcnt", counter, "Number of memory usage hits limits")
	mFaults       = describe("container_memory_failures_total", counter, "Cumulative count of memory allocation failures.", "failure_type", "scope")
	mOOM          = describe("container_oom_events_total", counter, "Count of out of memory events observed for the container")
	mProcesses    = describe("container_processes", gauge, "Number of processes running inside the container.")
	mThreads      = describe("container_threads", gauge, "Number of threads running inside the container")
	mThreadsMax   = describe("container_threads_max", gauge, "Maximum number of threads allowed inside the container, infinity if value is zero")
	mFDs          = describe("container_file_descriptors", gauge, "Number of open file descriptors for the container.")
	mSockets      = describe("container_sockets", gauge, "Number of open sockets for the container.")
	mBlkio        = describe("container_blkio_device_usage_total", counter, "Blkio Device bytes usage", "device", "major", "minor", "operation")
	mFsReadBytes  = describe("container_fs_reads_bytes_total", counter, "Cumulative count of bytes read", "device")
	mFsReads      = describe("container_fs_reads_total", counter, "Cumulative count of reads completed", "device")
	mFsWriteBytes = describe("container_fs_writes_bytes_total", counter, "Cumulative count of bytes written", "device")
	mFsWrites     = describe("container_fs_writes_total", counter, "Cumulative count of writes completed", "device")
	mFsUsage      = describe("container_fs_usage_bytes", gauge, "Number of bytes that are consumed by the container on this filesystem.", "device")
	mFsInodes     = describe("container_fs_inodes_total", gauge, "Number of Inodes", "device")
	mFsInodesFree = describe("container_fs_inodes_free", gauge, "Number of available Inodes", "device")
	mFsLimit      = describe("container_fs_limit_bytes", gauge, "Number of bytes that can be consumed by the container on this filesystem.", "device")
	mSpecPeriod   = describe("container_spec_cpu_period", gauge, "CPU period of the container.")
	mSpecQuota    = describe("container_spec_cpu_quota", gauge, "CPU quota of the container.")
	mSpecShares   = describe("container_spec_cpu_shares", gauge, "CPU share of the container.")
	mMemLimit     = describe("container_spec_memory_limit_bytes", gauge, "Memory limit for the container.")
	mSwapLimit    = describe("container_spec_memory_swap_limit_bytes", gauge, "Memory swap limit for the container.")
	mStartTime    = describe("container_start_time_seconds", gauge, "Start time of the container since unix epoch in seconds.")
	mLastSeen     = describe("container_last_seen", gauge, "Last time a container was seen by the exporter")
	mNetRxBytes   = describe("container_network_receive_bytes_total", counter, "Cumulative count of bytes received", "interface")
	mNetTxBytes   = describe("container_network_transmit_bytes_total", counter, "Cumulative count of bytes transmitted", "interface")
	mNetRxErrors  = describe("container_network_receive_errors_total", counter, "Cumulative count of errors encountered while receiving", "interface")
	mNetTxErrors  = describe("container_network_transmit_errors_total", counter, "Cumulative count of errors encountered while transmitting", "interface")
	mNetRxPackets = describe("container_network_receive_packets_total", counter, "Cumulative count of packets received", "interface")
	mNetTxPackets = describe("container_network_transmit_packets_total", counter, "Cumulative count of packets transmitted", "interface")
	mNetRxDropped = describe("container_network_receive_packets_dropped_total", counter, "Cumulative count of packets dropped while receiving", "interface")
	mNetTxDropped = describe("container_network_transmit_packets_dropped_total", counter, "Cumulative count of packets dropped while transmitting", "interface")

	// Only where the host has the data (cgroups.Stats says which).
	mHugetlbUsage = describe("container_hugetlb_usage_bytes", gauge, "Current hugepage usage in bytes", "pagesize")
	mHugetlbMax   = describe("container_hugetlb_max_usage_bytes", gauge, "Maximum hugepage usage recorded in bytes", "pagesize")
	mMemReserve   = describe("container_spec_memory_reservation_limit_bytes", gauge, "Memory reservation limit for the container.")
	mUlimitsSoft  = describe("container_ulimits_soft", gauge, "Soft ulimit values for the container root process. Unlimited if -1, except priority and nice", "ulimit")
	// PSI by resource: waiting is the "some" total, stalled the "full" one.
	mPressure = map[string][2]string{
		"cpu": {describe("container_pressure_cpu_waiting_seconds_total", counter, "Total time duration tasks in the container have waited due to CPU congestion."),
			describe("container_pressure_cpu_stalled_seconds_total", counter, "Total time duration no tasks in the container could make progress due to CPU congestion.")},
		"memory": {describe("container_pressure_memory_waiting_seconds_total", counter, "Total time duration tasks in the container have waited due to memory congestion."),
			describe("container_pressure_memory_stalled_seconds_total", counter, "Total time duration no tasks in the container could make progress due to memory congestion.")},
		"io": {describe("container_pressure_io_waiting_seconds_total", counter, "Total time duration tasks in the container have waited due to IO congestion."),
			describe("container_pressure_io_stalled_seconds_total", counter, "Total time duration no tasks in the container could make progress due to IO congestion.")},
	}
)

// seconds is whole seconds of nanoseconds: CRI metric values are integers.
func seconds(nanos uint64) uint64 { return nanos / uint64(time.Second) }

// addCgroupMetrics adds what a cgroup tells. As cAdvisor does, the CFS
// figures are there only when a quota is set.
func addCgroupMetrics(m *metricSet, cg *cgroups.Stats) {
	m.add(mCPU, seconds(cg.CPUUsageNanos), "total")
	m.add(mCPUUser, seconds(cg.CPUUserNanos))
	m.add(mCPUSystem, seconds(cg.CPUSystemNanos))
	if cg.Spec.CPUQuota != 0 {
		m.add(mCFSPeriods, cg.CFSPeriods)
		m.add(mCFSThrottled, cg.CFSThrottledPeriods)
		m.add(mCFSThrSecs, seconds(cg.CFSThrottledNanos))
		m.add(mSpecQuota, cg.Spec.CPUQuota)
	}
	m.add(mMemUsage, cg.MemoryUsage)
	m.add(mWorkingSet, cg.MemoryWorkingSet)
	m.add(mRSS, cg.MemoryRSS)
	m.add(mCache, cg.MemoryCache)
	m.add(mMapped, cg.MemoryMappedFile)
	m.add(mKernel, cg.MemoryKernel)
	m.add(mSwap, cg.MemorySwap)
	m.add(mMaxUsage, cg.MemoryMaxUsage)
	m.add(mFailcnt, cg.MemoryFailcnt)
	m.add(mFaults, cg.PageFaults, "pgfault", "container")
	m.add(mFaults, cg.MajorPageFaults, "pgmajfault", "container")
	m.add(mOOM, cg.OOMKills)
	m.add(mProcesses, cg.Processes)
	m.add(mThreads, cg.Threads)
	m.add(mThreadsMax, cg.ThreadsMax)
	m.add(mFDs, cg.FileDescriptors)
	m.add(mSockets, cg.Sockets)
	m.add(mSpecPeriod, cg.Spec.CPUPeriod)
	m.add(mSpecShares, cg.Spec.CPUShares)
	m.add(mSwapLimit, cg.Spec.MemorySwapLimit)
	addBlockIOMetrics(m, cg.BlockIO)
	addHostOnlyMetrics(m, cg)
}

func addBlockIOMetrics(m *metricSet, devices []cgroups.DeviceIO) {
	for _, d := range devices {
		dev, major, minor := d.Device, fmt.Sprint(d.Major), fmt.Sprint(d.Minor)
		if dev == "" {
			dev = major + ":" + minor
		}
		m.add(mBlkio, d.ReadBytes, dev, major, minor, "Read")
		m.add(mBlkio, d.WriteBytes, dev, major, minor, "Write")
		m.add(mFsReadBytes, d.ReadBytes, dev)
		m.add(mFsReads, d.Reads, dev)
		m.add(mFsWriteBytes, d.WriteBytes, dev)
		m.add(mFsWrites, d.Writes, dev)
	}
}

// addHostOnlyMetrics adds what only some hosts have; what a host lacks is
// left out, not reported as 0.
func addHostOnlyMetrics(m *metricSet, cg *cgroups.Stats) {
	for _, h := range cg.Hugetlb {
		m.add(mHugetlbUsage, h.Usage, h.PageSize)
		if h.HasMaxUsage {
			m.add(mHugetlbMax, h.MaxUsage, h.PageSize)
		}
	}
	for _, res := range cgroups.PressureResources {
		if p, ok := cg.Pressure[res]; ok {
			m.add(mPressure[res][0], seconds(p.SomeMicros*uint64(time.Microsecond)))
			if p.HasFull {
				m.add(mPressure[res][1], seconds(p.FullMicros*uint64(time.Microsecond)))
			}
		}
	}
	if cg.Spec.HasMemoryReservation {
		m.add(mMemReserve, cg.Spec.MemoryReservation)
	}
	if cg.HasOpenFilesLimit {
		m.add(mUlimitsSoft, cg.OpenFilesLimit, "max_open_files")
	}
}
