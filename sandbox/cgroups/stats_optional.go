package cgroups

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// The figures cAdvisor has only where the host does: huge pages (the
// hugetlb controller), pressure stall information (PSI, cgroup v2 or a
// kernel that gives v1 cgroups pressure files), the memory reservation and
// the open-files limit of the container's first process. Each is left
// empty (nil, false) when its file is not there, so that no metric is made
// of a missing file.

// HugetlbUsage is a cgroup's use of one huge page size ("2MB", "1GB", as
// the kernel names its files). MaxUsage is known on v1 only: v2 keeps no
// peak.
type HugetlbUsage struct {
	PageSize        string
	Usage, MaxUsage uint64
	HasMaxUsage     bool
}

// Pressure is one resource's stall totals in µs: "some" (at least one task
// waited) and "full" (all tasks stalled; HasFull false when the kernel has
// no "full" line, as older kernels' cpu.pressure).
type Pressure struct {
	SomeMicros, FullMicros uint64
	HasFull                bool
}

// PressureResources are the resources with PSI files, keys of Stats.Pressure.
var PressureResources = []string{"cpu", "memory", "io"}

// hugetlb reads a cgroup's huge page use from dir: files
// "hugetlb.<size>.<usage>" and, where the kernel has it, "...<max>".
func hugetlb(dir, usage, max string) []HugetlbUsage {
	files, _ := filepath.Glob(filepath.Join(dir, "hugetlb.*."+usage))
	sort.Strings(files)
	var out []HugetlbUsage
	for _, f := range files {
		size := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "hugetlb."), "."+usage)
		if strings.Contains(size, ".") { // hugetlb.2MB.rsvd.current and the like
			continue
		}
		v, err := readUint(f)
		if err != nil {
			continue
		}
		h := HugetlbUsage{PageSize: size, Usage: v}
		if max != "" {
			h.MaxUsage, err = readUint(filepath.Join(dir, "hugetlb."+size+"."+max))
			h.HasMaxUsage = err == nil
		}
		out = append(out, h)
	}
	return out
}

// pressure reads <resource>.pressure files in dir; a resource without one
// is left out.
func pressure(dir string) map[string]Pressure {
	var out map[string]Pressure
	for _, res := range PressureResources {
		p, ok := readPressure(filepath.Join(dir, res+".pressure"))
		if !ok {
			continue
		}
		if out == nil {
			out = map[string]Pressure{}
		}
		out[res] = p
	}
	return out
}

// readPressure reads a PSI file ("some avg10=… total=N" and "full …").
func readPressure(path string) (Pressure, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Pressure{}, false
	}
	var p Pressure
	hasSome := false
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		total, ok := pressureTotal(f[1:])
		switch {
		case ok && f[0] == "some":
			p.SomeMicros, hasSome = total, true
		case ok && f[0] == "full":
			p.FullMicros, p.HasFull = total, true
		}
	}
	return p, hasSome
}

func pressureTotal(fields []string) (uint64, bool) {
	for _, kv := range fields {
		if v, ok := strings.CutPrefix(kv, "total="); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// unlimitedMemory is where cAdvisor takes a memory figure for "no limit"
// (the kernel rounds its largest value down from MaxInt64).
const unlimitedMemory = uint64(1) << 62

// memoryReservation reads a reservation file (v1 memory.soft_limit_in_bytes,
// v2 memory.min, which cAdvisor reads); no limit is 0, as cAdvisor has it.
func memoryReservation(path string) (uint64, bool) {
	f := readFields(path)
	if len(f) != 1 {
		return 0, false
	}
	if f[0] == "max" {
		return 0, true
	}
	v, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, false
	}
	if v > unlimitedMemory {
		v = 0
	}
	return v, true
}

// openFilesLimit is the soft "Max open files" limit of the container's root
// process, from /proc/<pid>/limits, as cAdvisor reports it; false when it
// cannot be read or is unlimited (a CRI value cannot say cAdvisor's -1).
func (r *Reader) openFilesLimit(pids []string) (uint64, bool) {
	pid := r.rootProcess(pids)
	if pid == "" {
		return 0, false
	}
	data, err := os.ReadFile(filepath.Join(r.procRoot, pid, "limits"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 2 {
				return 0, false
			}
			v, err := strconv.ParseUint(f[0], 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// rootProcess picks the container's init among the cgroup's processes: of
// those whose parent is outside the cgroup (the init, and exec'd processes
// that came later), the one started first.
func (r *Reader) rootProcess(pids []string) string {
	in := map[string]bool{}
	for _, pid := range pids {
		in[pid] = true
	}
	root, rootStart := "", uint64(0)
	for _, pid := range pids {
		ppid, start, ok := r.procStat(pid)
		if !ok || in[ppid] {
			continue
		}
		if root == "" || start < rootStart {
			root, rootStart = pid, start
		}
	}
	return root
}

// procStat reads a process's parent and start time (clock ticks since
// boot) from /proc/<pid>/stat, whose fields follow the command's ')'.
func (r *Reader) procStat(pid string) (ppid string, start uint64, ok bool) {
	data, err := os.ReadFile(filepath.Join(r.procRoot, pid, "stat"))
	if err != nil {
		return "", 0, false
	}
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 { // state is field 3 of proc(5), ppid 4, starttime 22
		return "", 0, false
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return f[1], start, err == nil
}
