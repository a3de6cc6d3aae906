package cgroups

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// On cgroup v2 the kernel kills the whole subtree through cgroup.kill.
func TestKillV2WritesCgroupKill(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "berth", "pod", "ctr")
	must(t, os.MkdirAll(filepath.Join(dir, "child"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu memory pids"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "cgroup.kill"), nil, 0o644))
	if err := kill(root, "/berth/pod/ctr", time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "cgroup.kill")); string(got) != "1" {
		t.Fatalf("cgroup.kill = %q", got)
	}
	// A cgroup that is already gone is nothing to kill.
	if err := kill(root, "/berth/pod/gone", time.Second); err != nil {
		t.Fatal(err)
	}
}

// On v1 the freezer holds the members still while they are killed.
func TestKillV1FreezesAndThaws(t *testing.T) {
	root := t.TempDir()
	for _, c := range []string{"freezer", "memory"} {
		must(t, os.MkdirAll(filepath.Join(root, c, "berth", "ctr"), 0o755))
		must(t, os.WriteFile(filepath.Join(root, c, "berth", "ctr", "cgroup.procs"), nil, 0o644))
	}
	state := filepath.Join(root, "freezer", "berth", "ctr", "freezer.state")
	must(t, os.WriteFile(state, []byte("THAWED"), 0o644))
	if err := kill(root, "/berth/ctr", time.Second); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(state); string(got) != "THAWED" {
		t.Fatalf("freezer.state left %q", got)
	}
}

func TestMembersWalksDescendants(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "a"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("12\n13\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "a", "cgroup.procs"), []byte("14\n"), 0o644))
	if got := members(dir); len(got) != 3 || got[0] != 12 || got[2] != 14 {
		t.Fatalf("members = %v", got)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
