package cgroups

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup1"
)

// writeTree writes files (path relative to root → content), making dirs.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o644))
	}
}

// fakeProc makes /proc/<pid>/fd for pid 7 with three descriptors, one a
// socket, and its stat and limits (at most 1024 open files).
func fakeProc(t *testing.T) string {
	proc := t.TempDir()
	writeTree(t, proc, map[string]string{"7/stat": procStat(7, 1, 5000), "7/limits": procLimits(1024)})
	fd := filepath.Join(proc, "7", "fd")
	must(t, os.MkdirAll(fd, 0o755))
	for name, target := range map[string]string{"0": "/dev/null", "1": "pipe:[12]", "3": "socket:[4242]"} {
		must(t, os.Symlink(target, filepath.Join(fd, name)))
	}
	return proc
}

// procStat is a /proc/<pid>/stat line with the parent and start time given.
func procStat(pid, ppid, start int) string {
	return fmt.Sprintf("%d (my (odd) sh) S %d %d %d 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 %d 1000 10 18446744073709551615\n",
		pid, ppid, pid, pid, start)
}

func procLimits(openFiles int) string {
	return "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		fmt.Sprintf("Max open files            %-20d 1048576              files     \n", openFiles) +
		"Max processes             unlimited            unlimited            processes \n"
}

// A recorded v2 tree: every cAdvisor figure comes from its file.
func TestStatsV2Extras(t *testing.T) {
	root, sys := t.TempDir(), t.TempDir()
	dir := "berth/pod/ctr/"
	writeTree(t, root, map[string]string{
		dir + "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 30\nnr_throttled 4\nthrottled_usec 2500\n",
		dir + "cpu.max":  "20000 100000\n", dir + "cpu.weight": "39\n",
		dir + "memory.current": "1000000\n", dir + "memory.peak": "3000000\n",
		dir + "memory.stat":         "anon 400000\nfile 500000\nfile_mapped 7000\nkernel_stack 100\nslab 200\nsock 300\ninactive_file 300000\n",
		dir + "memory.swap.current": "4096\n", dir + "memory.max": "67108864\n", dir + "memory.swap.max": "max\n",
		dir + "memory.events": "low 0\nhigh 0\nmax 9\noom 2\noom_kill 1\n",
		dir + "pids.current":  "3\n", dir + "pids.max": "100\n",
		dir + "io.stat":      "253:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
		dir + "cgroup.procs": "7\n",
		// An older kernel's cpu.pressure has no "full" line; no io.pressure.
		dir + "cpu.pressure":        "some avg10=0.00 avg60=0.00 avg300=0.00 total=2500000\n",
		dir + "memory.pressure":     "some avg10=1.00 avg60=0.00 avg300=0.00 total=4000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n",
		dir + "memory.min":          "1048576\n",
		dir + "hugetlb.2MB.current": "2097152\n", dir + "hugetlb.2MB.rsvd.current": "4194304\n", dir + "hugetlb.2MB.max": "max\n",
		dir + "hugetlb.1GB.current": "0\n",
	})
	writeTree(t, sys, map[string]string{"dev/block/253:0/uevent": "MAJOR=253\nMINOR=0\nDEVNAME=vda\n"})
	r := &Reader{unified: true, v2Root: root, procRoot: fakeProc(t), sysRoot: sys}
	s, err := r.Stats("/berth/pod/ctr")
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{CPUUserNanos: 1000000, CPUSystemNanos: 500000, CFSPeriods: 30, CFSThrottledPeriods: 4, CFSThrottledNanos: 2500000,
		MemoryCache: 500000, MemoryMappedFile: 7000, MemoryKernel: 600, MemorySwap: 4096, MemoryMaxUsage: 3000000,
		MemoryFailcnt: 9, OOMKills: 1, Threads: 3, ThreadsMax: 100, FileDescriptors: 3, Sockets: 1,
		// runc made weight 39 of shares 1024; cAdvisor turns it back into 998.
		Spec: Spec{CPUPeriod: 100000, CPUQuota: 20000, CPUShares: 998, MemorySwapLimit: math.MaxUint64,
			MemoryReservation: 1048576, HasMemoryReservation: true},
		// v2 keeps no peak of huge page use.
		Hugetlb:        []HugetlbUsage{{PageSize: "1GB"}, {PageSize: "2MB", Usage: 2097152}},
		Pressure:       map[string]Pressure{"cpu": {SomeMicros: 2500000}, "memory": {SomeMicros: 4000000, FullMicros: 1500000, HasFull: true}},
		OpenFilesLimit: 1024, HasOpenFilesLimit: true}
	checkExtras(t, s, want)
	if len(s.BlockIO) != 1 || s.BlockIO[0] != (DeviceIO{Major: 253, Device: "/dev/vda", ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}) {
		t.Fatalf("block I/O = %+v", s.BlockIO)
	}
	writeTree(t, root, map[string]string{dir + "pids.max": "max\n"})
	if s, err := r.Stats("/berth/pod/ctr"); err != nil || s.ThreadsMax != 0 {
		t.Fatalf("threads max without a limit = %d, %v; want 0", s.ThreadsMax, err)
	}
}

// A recorded v1 tree, read through containerd's v1 controllers.
func TestStatsV1FromFiles(t *testing.T) {
	root, proc := t.TempDir(), fakeProc(t)
	writeTree(t, proc, map[string]string{"partitions": "major minor  #blocks  name\n\n 253        0   10485760 vda\n"})
	p := "/berth/pod/ctr/"
	files := map[string]string{
		"cpu" + p + "cpu.stat":          "nr_periods 30\nnr_throttled 4\nthrottled_time 2500000\n",
		"cpu" + p + "cpu.cfs_period_us": "100000\n", "cpu" + p + "cpu.shares": "512\n", "cpu" + p + "cpu.cfs_quota_us": "-1\n",
		"cpuacct" + p + "cpuacct.usage": "1500000\n", "cpuacct" + p + "cpuacct.usage_percpu": "1500000\n",
		"cpuacct" + p + "cpuacct.stat":      "user 100\nsystem 50\n",
		"memory" + p + "memory.stat":        "total_cache 500000\ntotal_rss 400000\ntotal_mapped_file 7000\ntotal_inactive_file 300000\n",
		"memory" + p + "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"pids" + p + "pids.current":         "3\n", "pids" + p + "pids.max": "100\n", "pids" + p + "cgroup.procs": "7\n",
		"blkio" + p + "blkio.io_service_bytes_recursive": "253:0 Read 4096\n253:0 Write 8192\n253:0 Total 12288\nTotal 12288\n",
		"blkio" + p + "blkio.io_serviced_recursive":      "253:0 Read 1\n253:0 Write 2\n253:0 Total 3\nTotal 3\n",
		// No limit: the kernel's largest page-rounded value.
		"memory" + p + "memory.soft_limit_in_bytes":  "9223372036854771712\n",
		"hugetlb" + p + "hugetlb.2MB.usage_in_bytes": "2097152\n", "hugetlb" + p + "hugetlb.2MB.max_usage_in_bytes": "4194304\n",
		"hugetlb" + p + "hugetlb.2MB.rsvd.usage_in_bytes": "0\n",
		// A kernel that gives v1 cgroups PSI files has them in cpuacct.
		"cpuacct" + p + "io.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 total=3000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\n",
	}
	for module, v := range map[string][4]string{"": {"1000000", "3000000", "5", "67108864"}, "memsw.": {"1004096", "3000000", "0", "134217728"},
		"kmem.": {"600", "700", "0", "9223372036854771712"}, "kmem.tcp.": {"0", "0", "0", "9223372036854771712"}} {
		for i, name := range []string{"usage_in_bytes", "max_usage_in_bytes", "failcnt", "limit_in_bytes"} {
			files["memory"+p+"memory."+module+name] = v[i] + "\n"
		}
	}
	for _, name := range []string{"io_serviced_recursive", "io_service_bytes_recursive", "io_queued_recursive",
		"io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive", "time_recursive", "sectors_recursive"} {
		if _, ok := files["blkio"+p+"blkio."+name]; !ok {
			files["blkio"+p+"blkio."+name] = ""
		}
	}
	writeTree(t, root, files)
	subsystems := []cgroup1.Subsystem{cgroup1.NewCpu(root), cgroup1.NewCpuacct(root), cgroup1.NewMemory(root),
		cgroup1.NewPids(root), cgroup1.NewBlkio(root, cgroup1.ProcRoot(proc))}
	r := &Reader{hierarchy: func() ([]cgroup1.Subsystem, error) { return subsystems, nil }, v1Root: root, procRoot: proc}
	s, err := r.Stats("/berth/pod/ctr")
	if err != nil {
		t.Fatal(err)
	}
	// cpuacct.stat is in clock ticks (USER_HZ, 100 a second).
	want := Stats{CPUUserNanos: 1000000000, CPUSystemNanos: 500000000, CFSPeriods: 30, CFSThrottledPeriods: 4, CFSThrottledNanos: 2500000,
		MemoryCache: 500000, MemoryMappedFile: 7000, MemoryKernel: 600, MemorySwap: 4096, MemoryMaxUsage: 3000000,
		MemoryFailcnt: 5, OOMKills: 1, Threads: 3, ThreadsMax: 100, FileDescriptors: 3, Sockets: 1,
		Spec:           Spec{CPUPeriod: 100000, CPUShares: 512, MemorySwapLimit: 134217728, HasMemoryReservation: true},
		Hugetlb:        []HugetlbUsage{{PageSize: "2MB", Usage: 2097152, MaxUsage: 4194304, HasMaxUsage: true}},
		Pressure:       map[string]Pressure{"io": {SomeMicros: 3000000, FullMicros: 2000000, HasFull: true}},
		OpenFilesLimit: 1024, HasOpenFilesLimit: true}
	checkExtras(t, s, want)
	if len(s.BlockIO) != 1 || s.BlockIO[0] != (DeviceIO{Major: 253, Device: "/dev/vda", ReadBytes: 4096, WriteBytes: 8192, Reads: 1, Writes: 2}) {
		t.Fatalf("block I/O = %+v", s.BlockIO)
	}
}

func checkExtras(t *testing.T, s *Stats, want Stats) {
	t.Helper()
	got := *s
	got.At, got.BlockIO = want.At, nil
	got.CPUUsageNanos, got.MemoryUsage, got.MemoryWorkingSet, got.MemoryRSS = 0, 0, 0, 0
	got.PageFaults, got.MajorPageFaults, got.Processes = 0, 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stats =\n%+v\nwant\n%+v", got, want)
	}
}
