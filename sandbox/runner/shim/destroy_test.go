package shim

import (
	"os"
	"path/filepath"
	"testing"
)

// removeCgroups takes the dirs it is given (here plain dirs standing in for
// a v1 container's cgroups, two controllers sharing one), tolerates one
// already gone, and refuses what it cannot remove, for the helper to do.
func TestRemoveCgroups(t *testing.T) {
	root := t.TempDir()
	cpu, mem := filepath.Join(root, "cpu", "c1"), filepath.Join(root, "memory", "c1")
	for _, d := range []string{cpu, mem} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	paths := map[string]string{"cpu": cpu, "cpuacct": cpu, "memory": mem, "pids": filepath.Join(root, "pids", "c1")}
	if err := removeCgroups(paths); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{cpu, mem} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", d, err)
		}
	}
	if err := removeCgroups(nil); err == nil {
		t.Error("no paths: removed nothing and said so? want an error, for the helper to destroy")
	}
	busy := filepath.Join(root, "busy")
	if err := os.MkdirAll(filepath.Join(busy, "child"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := removeCgroups(map[string]string{"memory": busy}); err == nil {
		t.Error("a dir that cannot go was reported removed")
	}
}
