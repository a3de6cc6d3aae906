package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/errdefs"
)

// On cgroup v2, stats come from cpu.stat, memory.current, memory.stat and
// pids.current; the working set is usage less inactive file pages.
func TestStatsV2FromFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "berth", "pod", "ctr")
	must(t, os.MkdirAll(dir, 0o755))
	files := map[string]string{
		"cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
		"memory.current": "1000000\n",
		"memory.stat":    "anon 400000\nfile 500000\ninactive_file 300000\npgfault 42\npgmajfault 3\n",
		"pids.current":   "2\n",
	}
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644))
	}
	r := &Reader{unified: true, v2Root: root}
	s, err := r.Stats("/berth/pod/ctr")
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUUsageNanos != 1500000 || s.MemoryUsage != 1000000 || s.MemoryWorkingSet != 700000 || s.MemoryRSS != 400000 ||
		s.PageFaults != 42 || s.MajorPageFaults != 3 || s.Processes != 2 || s.At.IsZero() {
		t.Fatalf("stats = %+v", s)
	}
	if _, err := r.Stats("/berth/pod/gone"); !errdefs.IsNotFound(err) {
		t.Fatalf("stats of a missing cgroup: %v, want NotFound", err)
	}
}

func TestWorkingSet(t *testing.T) {
	if workingSet(100, 30) != 70 || workingSet(100, 100) != 0 || workingSet(10, 30) != 0 {
		t.Fatal("working set is usage less inactive file, never below zero")
	}
}

// On this host's cgroup v1, the stats of a cgroup of the test's own with a
// process in it.
func TestStatsV1OfRealCgroup(t *testing.T) {
	if os.Getuid() != 0 || cgroups.Mode() == cgroups.Unified {
		t.Skip("needs root on a cgroup v1 host")
	}
	path := fmt.Sprintf("/berth-test-stats-%d", os.Getpid())
	var dirs []string
	for _, c := range []string{"cpuacct", "memory", "pids"} {
		dir := filepath.Join(mountRoot, c, path)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot make a %s cgroup: %v", c, err)
		}
		dirs = append(dirs, dir)
	}
	// It waits to be moved in, then fills 2 MB of its own memory.
	cmd := exec.Command("sh", "-c", "read go; x=$(head -c 2000000 /dev/zero | tr '\\0' a); echo ready; sleep 100")
	stdin, err := cmd.StdinPipe()
	must(t, err)
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		// The shell's sleep is in the cgroups too: kill what is there, then
		// remove them once empty.
		if err := kill(mountRoot, path, 10*time.Second); err != nil {
			t.Error(err)
		}
		for _, d := range dirs {
			if err := os.Remove(d); err != nil {
				t.Errorf("remove the test's cgroup: %v", err)
			}
		}
	})
	for _, d := range dirs {
		must(t, os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
	}
	fmt.Fprintln(stdin, "go")
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader()
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Stats(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Processes < 1 || s.MemoryUsage < 2000000 || s.MemoryWorkingSet > s.MemoryUsage || s.CPUUsageNanos == 0 {
		t.Fatalf("stats = %+v", s)
	}
}
