package shim

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// In a shared PID namespace (here the host's), what the init started dies
// with it before the exit is reported: a background child, a daemon
// reparented at once, whether the init was stopped or ended by itself.
func TestLeftoversDieBeforeTheExit(t *testing.T) {
	for name, script := range map[string]string{
		"stopped": "sleep 1000 & (setsid sleep 1001 &); exec sleep 1002",
		"ended":   "sleep 1000 & (setsid sleep 1001 &); sleep 1002 & read x </tmp/end",
	} {
		t.Run(name, func(t *testing.T) {
			rootfs, dir, cs := newTestContainers(t)
			runReaper(t, cs)
			spec := testSpec(rootfs, name, "/bin/sh", "-c", script)
			spec.Linux.Namespaces = spec.Linux.Namespaces[1:] // the host's PID namespace
			end := filepath.Join(dir, "end")
			if err := syscall.Mkfifo(end, 0o600); err != nil {
				t.Fatal(err)
			}
			spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/tmp/end", Source: end, Type: "bind", Options: []string{"bind"}})
			startWith(t, cs, dir, name, spec, runner.IO{})
			c, err := cs.get(name)
			if err != nil {
				t.Fatal(err)
			}
			procs := longSleeps(t, membersDir(c.cgroupPaths))
			if name == "stopped" {
				err = cs.Signal(name, syscall.SIGTERM)
			} else {
				err = os.WriteFile(end, []byte("\n"), 0)
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, done, err := cs.Wait(name, 30*time.Second); err != nil || !done {
				t.Fatalf("wait: %v %v", done, err)
			}
			for pid, start := range procs {
				if st := statFields(pid); st != nil && st[19] == start && st[0] != "Z" {
					t.Errorf("process %d of the exited container still runs (%s)", pid, st[0])
				}
			}
		})
	}
}

// longSleeps waits until the cgroup dir holds three long sleeps (sleep
// 100x) and returns their start times by pid.
func longSleeps(t *testing.T, dir string) map[int]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := map[int]string{}
		for _, pid := range cgroupMembers(dir) {
			args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if st := statFields(pid); st != nil && strings.HasPrefix(string(args), "sleep\x00100") {
				out[pid] = st[19]
			}
		}
		if len(out) >= 3 || time.Now().After(deadline) {
			if len(out) != 3 {
				t.Fatalf("sleeps in %s: %v, want 3", dir, out)
			}
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// statFields is /proc/<pid>/stat after the command's name (state, ppid,
// ...; the start time is [19]), or nil when the process is gone.
func statFields(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	return strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
}
