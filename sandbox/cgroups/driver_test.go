package cgroups

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHugetlbSupported(t *testing.T) {
	v2, v2without, v1, v1without := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(v2, "cgroup.controllers"), []byte("cpuset cpu io memory hugetlb pids\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(v2without, "cgroup.controllers"), []byte("cpu memory pids\n"), 0o644))
	must(t, os.Mkdir(filepath.Join(v1, "hugetlb"), 0o755))
	must(t, os.Mkdir(filepath.Join(v1without, "memory"), 0o755))
	for root, want := range map[string]bool{v2: true, v2without: false, v1: true, v1without: false} {
		if got := hugetlbSupported(root); got != want {
			t.Errorf("%s: %v, want %v", root, got, want)
		}
	}
}
