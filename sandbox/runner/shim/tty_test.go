package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// newTestContainers returns a rootfs, a dir for logs and Containers with
// their state in it.
func newTestContainers(t *testing.T) (rootfs, dir string, cs *Containers) {
	t.Helper()
	rootfs = testRootfs(t)
	dir = t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), testRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	return rootfs, dir, cs
}

// startWith creates and starts container id from spec, wired as io says,
// and returns its log path.
func startWith(t *testing.T, cs *Containers, dir, id string, spec *specs.Spec, io runner.IO) string {
	t.Helper()
	io.LogPath = filepath.Join(dir, id+".log")
	if err := cs.Create(id, spec, io); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Delete(id) })
	if err := cs.Start(id); err != nil {
		t.Fatal(err)
	}
	return io.LogPath
}

// A terminal's output is logged as stdout, one record a line, without the
// terminal's carriage returns.
func TestTerminalOutputIsLoggedAsStdout(t *testing.T) {
	rootfs, dir, cs := newTestContainers(t)
	spec := testSpec(rootfs, "t1", "/bin/sh", "-c", "tty; echo to-stderr >&2; exit 2")
	spec.Process.Terminal = true
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
		Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}})
	logPath := startWith(t, cs, dir, "t1", spec, runner.IO{})
	exit, done, err := cs.Wait("t1", 30*time.Second)
	if err != nil || !done || exit.Code != 2 {
		t.Fatalf("exit = %+v, done %v, %v", exit, done, err)
	}
	data, _ := os.ReadFile(logPath)
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("bad log line %q", l)
		}
		got = append(got, f[1]+" "+f[2]+" "+f[3])
	}
	if strings.Join(got, "|") != "stdout F /dev/pts/0|stdout F to-stderr" {
		t.Fatalf("log records %q", got)
	}
}

// With stdin, the shim holds the container's stdin open: cat keeps reading.
// Without, stdin is /dev/null and cat ends at once.
func TestStdinIsHeldOpen(t *testing.T) {
	rootfs, dir, cs := newTestContainers(t)
	startWith(t, cs, dir, "s1", testSpec(rootfs, "s1", "/bin/cat"), runner.IO{Stdin: true})
	startWith(t, cs, dir, "s2", testSpec(rootfs, "s2", "/bin/cat"), runner.IO{})
	exit, done, err := cs.Wait("s2", 30*time.Second)
	if err != nil || !done || exit.Code != 0 {
		t.Fatalf("cat without stdin: exit = %+v, done %v, %v", exit, done, err)
	}
	if _, done, _ := cs.Wait("s1", 500*time.Millisecond); done {
		t.Fatal("cat with stdin ended: its stdin was not held open")
	}
}
