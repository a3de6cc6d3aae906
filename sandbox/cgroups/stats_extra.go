package cgroups

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
)

// blockIOV1 folds v1's per-device, per-operation entries into one entry a
// device (the throttle files when CFQ's are empty: containerd reads those).
func blockIOV1(b *v1stats.BlkIOStat) []DeviceIO {
	var out []DeviceIO
	at := map[[2]uint64]int{}
	add := func(e *v1stats.BlkIOEntry, bytes bool) {
		key := [2]uint64{e.GetMajor(), e.GetMinor()}
		i, ok := at[key]
		if !ok {
			i = len(out)
			at[key] = i
			out = append(out, DeviceIO{Major: e.GetMajor(), Minor: e.GetMinor(), Device: e.GetDevice()})
		}
		d := &out[i]
		switch {
		case e.GetOp() == "Read" && bytes:
			d.ReadBytes = e.GetValue()
		case e.GetOp() == "Write" && bytes:
			d.WriteBytes = e.GetValue()
		case e.GetOp() == "Read":
			d.Reads = e.GetValue()
		case e.GetOp() == "Write":
			d.Writes = e.GetValue()
		}
	}
	for _, e := range b.GetIoServiceBytesRecursive() {
		add(e, true)
	}
	for _, e := range b.GetIoServicedRecursive() {
		add(e, false)
	}
	return out
}

// addV1Extras reads what containerd's v1 stats leave out: the OOM kill
// count, the CPU spec, the processes' file descriptors, and what only some
// hosts have (stats_optional.go).
func (r *Reader) addV1Extras(s *Stats, path string) {
	if kv, err := readKeyValues(filepath.Join(r.v1Root, "memory", path, "memory.oom_control")); err == nil {
		s.OOMKills = kv["oom_kill"]
	}
	s.Spec.CPUPeriod, _ = readUint(filepath.Join(r.v1Root, "cpu", path, "cpu.cfs_period_us"))
	s.Spec.CPUShares, _ = readUint(filepath.Join(r.v1Root, "cpu", path, "cpu.shares"))
	// -1 (no quota) does not parse: 0.
	s.Spec.CPUQuota, _ = readUint(filepath.Join(r.v1Root, "cpu", path, "cpu.cfs_quota_us"))
	pids := readFields(filepath.Join(r.v1Root, "pids", path, "cgroup.procs"))
	s.FileDescriptors, s.Sockets = r.countFDs(pids)
	s.Spec.MemoryReservation, s.Spec.HasMemoryReservation = memoryReservation(filepath.Join(r.v1Root, "memory", path, "memory.soft_limit_in_bytes"))
	s.Hugetlb = hugetlb(filepath.Join(r.v1Root, "hugetlb", path), "usage_in_bytes", "max_usage_in_bytes")
	// Kernels that give v1 cgroups PSI files put them in the cpuacct hierarchy.
	s.Pressure = pressure(filepath.Join(r.v1Root, "cpuacct", path))
	s.OpenFilesLimit, s.HasOpenFilesLimit = r.openFilesLimit(pids)
}

// addV2Extras reads the CPU and swap spec, names the block devices, counts
// the processes' file descriptors, and reads what only some hosts have.
func (r *Reader) addV2Extras(s *Stats, dir string) {
	if f := readFields(filepath.Join(dir, "cpu.max")); len(f) == 2 {
		s.Spec.CPUPeriod, _ = strconv.ParseUint(f[1], 10, 64)
		// "max" (no quota) does not parse: 0.
		s.Spec.CPUQuota, _ = strconv.ParseUint(f[0], 10, 64)
	}
	if w, err := readUint(filepath.Join(dir, "cpu.weight")); err == nil && w > 0 {
		s.Spec.CPUShares = weightToShares(w)
	}
	// As cAdvisor does: v2's swap limit is swap alone, the spec's is memory
	// and swap together.
	swap, memLimit := readLimit(filepath.Join(dir, "memory.swap.max")), readLimit(filepath.Join(dir, "memory.max"))
	switch {
	case swap == math.MaxUint64 || memLimit == math.MaxUint64:
		s.Spec.MemorySwapLimit = math.MaxUint64
	default:
		s.Spec.MemorySwapLimit = swap + memLimit
	}
	for i := range s.BlockIO {
		s.BlockIO[i].Device = r.deviceName(s.BlockIO[i].Major, s.BlockIO[i].Minor)
	}
	pids := readFields(filepath.Join(dir, "cgroup.procs"))
	s.FileDescriptors, s.Sockets = r.countFDs(pids)
	s.Spec.MemoryReservation, s.Spec.HasMemoryReservation = memoryReservation(filepath.Join(dir, "memory.min"))
	s.Hugetlb = hugetlb(dir, "current", "")
	s.Pressure = pressure(dir)
	s.OpenFilesLimit, s.HasOpenFilesLimit = r.openFilesLimit(pids)
}

// weightToShares inverts runc's shares → weight conversion
// (weight = 1 + (shares-2)*9999/262142).
func weightToShares(w uint64) uint64 { return 2 + (w-1)*262142/9999 }

// countFDs counts the open file descriptors of the processes
// pids, and those that are sockets. A process that exits meanwhile is
// skipped.
func (r *Reader) countFDs(pids []string) (fds, sockets uint64) {
	for _, pid := range pids {
		dir := filepath.Join(r.procRoot, pid, "fd")
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			fds++
			if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(target, "socket:") {
				sockets++
			}
		}
	}
	return fds, sockets
}

// deviceName is the /dev path of a block device, from sysfs; "" if it
// has none.
func (r *Reader) deviceName(major, minor uint64) string {
	kv, err := readStrings(filepath.Join(r.sysRoot, "dev", "block", fmt.Sprintf("%d:%d", major, minor), "uevent"), "=")
	if err != nil || kv["DEVNAME"] == "" {
		return ""
	}
	return "/dev/" + kv["DEVNAME"]
}

func readFields(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(data))
}

func readUint(path string) (uint64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
}

// readLimit reads a v2 limit file: "max" is math.MaxUint64, a missing or
// unreadable file 0.
func readLimit(path string) uint64 {
	f := readFields(path)
	if len(f) == 1 && f[0] == "max" {
		return math.MaxUint64
	}
	if len(f) != 1 {
		return 0
	}
	v, _ := strconv.ParseUint(f[0], 10, 64)
	return v
}

// readKeyValues reads "key value" lines of numbers.
func readKeyValues(path string) (map[string]uint64, error) {
	kv, err := readStrings(path, " ")
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for k, v := range kv {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

func readStrings(path, sep string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), sep); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}
