package cgroups

import (
	"errors"
	"fmt"
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
// was made, memory as the kubelet reads it, and its processes.
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
}

// Reader reads cgroup stats, on cgroup v2 when the host is unified, else
// from the v1 cpuacct, memory and pids controllers.
type Reader struct {
	unified   bool
	v2Root    string
	hierarchy cgroup1.Hierarchy
}

// v1Controllers are the v1 controllers stats are read from (blkio and the
// others would cost a read each for nothing the CRI reports).
var v1Controllers = []cgroup1.Name{cgroup1.Cpuacct, cgroup1.Memory, cgroup1.Pids}

// NewReader probes the host's cgroup layout once.
func NewReader() (*Reader, error) {
	if cgroups.Mode() == cgroups.Unified {
		return &Reader{unified: true, v2Root: mountRoot}, nil
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
	return &Reader{hierarchy: func() ([]cgroup1.Subsystem, error) { return subsystems, nil }}, nil
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
		metrics, err := m.StatFiltered(cgroup2.StatCPU | cgroup2.StatMemory | cgroup2.StatPids)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s stats: %w", path, err)
		}
		return fromV2(now, metrics), nil
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
	return fromV1(now, metrics), nil
}

func fromV1(at time.Time, m *v1stats.Metrics) *Stats {
	s := &Stats{At: at, CPUUsageNanos: m.GetCPU().GetUsage().GetTotal(), Processes: m.GetPids().GetCurrent()}
	if mem := m.GetMemory(); mem != nil {
		s.MemoryUsage = mem.GetUsage().GetUsage()
		s.MemoryWorkingSet = workingSet(s.MemoryUsage, mem.GetTotalInactiveFile())
		s.MemoryRSS = mem.GetTotalRSS()
		s.PageFaults, s.MajorPageFaults = mem.GetTotalPgFault(), mem.GetTotalPgMajFault()
	}
	return s
}

func fromV2(at time.Time, m *v2stats.Metrics) *Stats {
	s := &Stats{At: at, CPUUsageNanos: m.GetCPU().GetUsageUsec() * 1000, Processes: m.GetPids().GetCurrent()}
	if mem := m.GetMemory(); mem != nil {
		s.MemoryUsage = mem.GetUsage()
		s.MemoryWorkingSet = workingSet(s.MemoryUsage, mem.GetInactiveFile())
		s.MemoryRSS = mem.GetAnon()
		s.PageFaults, s.MajorPageFaults = mem.GetPgfault(), mem.GetPgmajfault()
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
