package cgroups

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/errdefs"
)

// Stats is a cgroup's resource use at one moment: CPU time used since it
// was made, memory as the kubelet reads it, its processes, and the rest of
// what cAdvisor reports of a container.
type Stats struct {
	At            time.Time
	CPUUsageNanos uint64
	MemoryUsage   uint64
	// MemoryWorkingSet is usage less inactive file pages (what the kubelet
	// evicts on).
	MemoryWorkingSet uint64
	MemoryRSS        uint64
	PageFaults       uint64
	MajorPageFaults  uint64
	Processes        uint64

	CPUUserNanos, CPUSystemNanos uint64
	// CFS bandwidth: periods elapsed, periods throttled, time throttled.
	CFSPeriods, CFSThrottledPeriods, CFSThrottledNanos      uint64
	MemoryCache, MemoryMappedFile, MemoryKernel, MemorySwap uint64
	MemoryMaxUsage                                          uint64
	// MemoryFailcnt is how often usage hit the limit (v1 memory.failcnt; v2
	// memory.events "max", as runc and cAdvisor read it).
	MemoryFailcnt uint64
	OOMKills      uint64
	// Threads is pids.current (tasks, not processes); ThreadsMax is
	// pids.max, 0 for no limit.
	Threads, ThreadsMax uint64
	// FileDescriptors and Sockets are counted over the cgroup's processes.
	FileDescriptors, Sockets uint64
	BlockIO                  []DeviceIO
	Spec                     Spec
	// What only some hosts have (stats_optional.go): huge page use, PSI
	// by resource ("cpu", "memory", "io"), the root process's open-files
	// limit. Empty (nil, false) where the host lacks it.
	Hugetlb           []HugetlbUsage
	Pressure          map[string]Pressure
	OpenFilesLimit    uint64
	HasOpenFilesLimit bool
}

// DeviceIO is a cgroup's block I/O on one device: bytes and operations.
type DeviceIO struct {
	Major, Minor uint64
	// Device is the device's /dev path, "" when unknown.
	Device                string
	ReadBytes, WriteBytes uint64
	Reads, Writes         uint64
}

// Spec is what a cgroup is allowed: the CFS period and quota (µs, quota 0
// when there is none), the CPU shares (v2's weight converted back), the
// memory+swap limit (0 when unknown, math.MaxUint64 when unlimited on v2)
// and the memory reservation (0 for none; HasMemoryReservation false when
// the cgroup has no such file).
type Spec struct {
	CPUPeriod, CPUQuota, CPUShares, MemorySwapLimit uint64
	MemoryReservation                               uint64
	HasMemoryReservation                            bool
}

// Reader reads cgroup stats, on cgroup v2 when the host is unified, else
// from the v1 cpuacct, memory and pids controllers.
type Reader struct {
	unified   bool
	v2Root    string
	hierarchy cgroup1.Hierarchy
	// v1Root holds the v1 controllers' mounts; procRoot and sysRoot are
	// /proc and /sys (a test's fake trees).
	v1Root, procRoot, sysRoot string
}

// v1Controllers are the v1 controllers stats are read from (the others
// would cost a read each for nothing the CRI reports).
var v1Controllers = []cgroup1.Name{cgroup1.Cpu, cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids, cgroup1.Blkio}

// NewReader probes the host's cgroup layout once.
func NewReader() (*Reader, error) {
	if cgroups.Mode() == cgroups.Unified {
		return &Reader{unified: true, v2Root: mountRoot, procRoot: "/proc", sysRoot: "/sys"}, nil
	}
	all, err := cgroup1.Default()
	if err != nil {
		return nil, fmt.Errorf("cgroup v1 controllers: %w", err)
	}
	var subsystems []cgroup1.Subsystem
	for _, s := range all {
		if slices.Contains(v1Controllers, s.Name()) {
			subsystems = append(subsystems, s)
		}
	}
	return &Reader{hierarchy: func() ([]cgroup1.Subsystem, error) { return subsystems, nil },
		v1Root: mountRoot, procRoot: "/proc", sysRoot: "/sys"}, nil
}

// Stats reads the stats of the cgroup at path (e.g. "/berth/<pod>/<id>"). A
// cgroup that is gone is NotFound.
func (r *Reader) Stats(path string) (*Stats, error) {
	now := time.Now()
	if r.unified {
		if _, err := os.Stat(r.v2Root + path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("cgroup %s: %w", path, errdefs.ErrNotFound)
		}
		m, err := cgroup2.Load(path, cgroup2.WithMountpoint(r.v2Root))
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", path, err)
		}
		metrics, err := m.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatPids |
			cgroup2.StatMemoryEvents | cgroup2.StatIO)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s stats: %w", path, err)
		}
		s := fromV2(now, metrics)
		r.addV2Extras(s, r.v2Root+path)
		return s, nil
	}
	c, err := cgroup1.Load(cgroup1.StaticPath(path), cgroup1.WithHierarchy(r.hierarchy))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, fmt.Errorf("cgroup %s: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", path, err)
	}
	metrics, err := c.Stat(cgroup1.IgnoreNotExist)
	if err != nil {
		return nil, fmt.Errorf("cgroup %s stats: %w", path, err)
	}
	s := fromV1(now, metrics)
	r.addV1Extras(s, path)
	return s, nil
}

func fromV1(at time.Time, m *v1stats.Metrics) *Stats {
	cpu := m.GetCPU()
	s := &Stats{At: at, CPUUsageNanos: cpu.GetUsage().GetTotal(), Processes: m.GetPids().GetCurrent(),
		CPUUserNanos: cpu.GetUsage().GetUser(), CPUSystemNanos: cpu.GetUsage().GetKernel(),
		CFSPeriods: cpu.GetThrottling().GetPeriods(), CFSThrottledPeriods: cpu.GetThrottling().GetThrottledPeriods(),
		CFSThrottledNanos: cpu.GetThrottling().GetThrottledTime(),
		Threads:           m.GetPids().GetCurrent(), ThreadsMax: m.GetPids().GetLimit()}
	if mem := m.GetMemory(); mem != nil {
		s.MemoryUsage = mem.GetUsage().GetUsage()
		s.MemoryWorkingSet = workingSet(s.MemoryUsage, mem.GetTotalInactiveFile())
		s.MemoryRSS = mem.GetTotalRSS()
		s.PageFaults, s.MajorPageFaults = mem.GetTotalPgFault(), mem.GetTotalPgMajFault()
		s.MemoryCache, s.MemoryMappedFile = mem.GetTotalCache(), mem.GetTotalMappedFile()
		s.MemoryKernel, s.MemoryMaxUsage = mem.GetKernel().GetUsage(), mem.GetUsage().GetMax()
		s.MemoryFailcnt = mem.GetUsage().GetFailcnt()
		// memsw counts memory and swap together.
		s.MemorySwap = workingSet(mem.GetSwap().GetUsage(), s.MemoryUsage)
		s.Spec.MemorySwapLimit = mem.GetSwap().GetLimit()
	}
	s.BlockIO = blockIOV1(m.GetBlkio())
	return s
}

func fromV2(at time.Time, m *v2stats.Metrics) *Stats {
	cpu := m.GetCPU()
	s := &Stats{At: at, CPUUsageNanos: cpu.GetUsageUsec() * 1000, Processes: m.GetPids().GetCurrent(),
		CPUUserNanos: cpu.GetUserUsec() * 1000, CPUSystemNanos: cpu.GetSystemUsec() * 1000,
		CFSPeriods: cpu.GetNrPeriods(), CFSThrottledPeriods: cpu.GetNrThrottled(), CFSThrottledNanos: cpu.GetThrottledUsec() * 1000,
		Threads: m.GetPids().GetCurrent(), ThreadsMax: m.GetPids().GetLimit(),
		MemoryFailcnt: m.GetMemoryEvents().GetMax(), OOMKills: m.GetMemoryEvents().GetOomKill()}
	if mem := m.GetMemory(); mem != nil {
		s.MemoryUsage = mem.GetUsage()
		s.MemoryWorkingSet = workingSet(s.MemoryUsage, mem.GetInactiveFile())
		s.MemoryRSS = mem.GetAnon()
		s.PageFaults, s.MajorPageFaults = mem.GetPgfault(), mem.GetPgmajfault()
		s.MemoryCache, s.MemoryMappedFile = mem.GetFile(), mem.GetFileMapped()
		s.MemoryKernel = mem.GetKernelStack() + mem.GetSlab() + mem.GetSock()
		s.MemorySwap, s.MemoryMaxUsage = mem.GetSwapUsage(), mem.GetMaxUsage()
	}
	if s.ThreadsMax == math.MaxUint64 { // "max": as on v1 and in cAdvisor, 0 is no limit
		s.ThreadsMax = 0
	}
	for _, e := range m.GetIo().GetUsage() {
		s.BlockIO = append(s.BlockIO, DeviceIO{Major: e.GetMajor(), Minor: e.GetMinor(),
			ReadBytes: e.GetRbytes(), WriteBytes: e.GetWbytes(), Reads: e.GetRios(), Writes: e.GetWios()})
	}
	return s
}

// workingSet is usage less inactive file pages, never below zero.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}
