package cgroups

import (
	"path/filepath"
	"testing"
)

// The root process is the first started of those whose parent is outside
// the cgroup: not a child started earlier by the clock, not a later exec.
func TestOpenFilesLimitOfRootProcess(t *testing.T) {
	proc, cg := t.TempDir(), t.TempDir()
	writeTree(t, proc, map[string]string{
		"20/stat": procStat(20, 20, 400), "20/limits": procLimits(10), // exec'd later
		"9/stat": procStat(9, 3, 100), "9/limits": procLimits(1024), // the init
		"12/stat": procStat(12, 9, 100), "12/limits": procLimits(20), // its child, same tick
		"5/stat": procStat(5, 9, 90), "5/limits": procLimits(30), // a child whose pid wrapped
	})
	writeTree(t, cg, map[string]string{"cgroup.procs": "20\n12\n5\n9\n"})
	r := &Reader{procRoot: proc}
	if v, ok := r.openFilesLimit(readFields(filepath.Join(cg, "cgroup.procs"))); !ok || v != 1024 {
		t.Fatalf("open files limit = %d, %v; want the init's 1024", v, ok)
	}
	writeTree(t, proc, map[string]string{"9/limits": "Max open files            unlimited            unlimited            files\n"})
	if v, ok := r.openFilesLimit(readFields(filepath.Join(cg, "cgroup.procs"))); ok {
		t.Fatalf("unlimited open files reported as %d", v)
	}
}

// A cgroup without the optional files has none of their figures.
func TestOptionalFiguresAbsent(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"cgroup.procs": "", "memory.pressure": "garbage\n"})
	r := &Reader{procRoot: t.TempDir()}
	if h := hugetlb(dir, "current", ""); h != nil {
		t.Errorf("hugetlb = %+v", h)
	}
	if p := pressure(dir); p != nil {
		t.Errorf("pressure = %+v", p)
	}
	if v, ok := memoryReservation(filepath.Join(dir, "memory.min")); ok {
		t.Errorf("memory reservation = %d", v)
	}
	if v, ok := r.openFilesLimit(readFields(filepath.Join(dir, "cgroup.procs"))); ok {
		t.Errorf("open files limit = %d", v)
	}
}
