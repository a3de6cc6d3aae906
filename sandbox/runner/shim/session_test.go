package shim

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// fifoPair makes a FIFO and opens the caller's end of it as berthd does
// (stdin read-write, an output read-only and non-blocking).
func fifoPair(t *testing.T, dir, name string, flag int) (string, *os.File) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, flag, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return p, f
}

// A terminal session starts at the size asked for, follows resizes, and
// reports its exit code.
func TestTerminalSessionResizes(t *testing.T) {
	rootfs, dir, cs := newTestContainers(t)
	spec := testSpec(rootfs, "r1", "/bin/sleep", "1000")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts",
		Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}})
	startWith(t, cs, dir, "r1", spec, runner.IO{})
	stdinPath, stdin := fifoPair(t, dir, "stdin", os.O_RDWR)
	stdoutPath, stdout := fifoPair(t, dir, "stdout", os.O_RDONLY|syscall.O_NONBLOCK)
	err := cs.ExecStart(runner.ExecStartArgs{ID: "r1", ExecID: "s1", TTY: true, Width: 80, Height: 24,
		Args: []string{"/bin/sh", "-c", "stty size; read x; stty size; exit 5"}, Stdin: stdinPath, Stdout: stdoutPath})
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	readLine := func() string {
		t.Helper()
		line, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %q, %v", line, err)
		}
		return strings.TrimSpace(line)
	}
	if got := readLine(); got != "24 80" {
		t.Fatalf("first size %q", got)
	}
	if err := cs.Resize("s1", 100, 40); err != nil {
		t.Fatal(err)
	}
	stdin.WriteString("go\n")
	for got := readLine(); got != "40 100"; got = readLine() {
		if got != "go" { // the terminal echoes input
			t.Fatalf("size after the resize %q", got)
		}
	}
	var w runner.ExecWaitReply
	for deadline := time.Now().Add(30 * time.Second); !w.Exited && time.Now().Before(deadline); {
		if w, err = cs.ExecWait("s1", time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if !w.Exited || w.ExitCode != 5 {
		t.Fatalf("session exit = %+v", w)
	}
	if _, err := cs.ExecWait("s1", 0); err == nil {
		t.Fatal("a reported session is still known")
	}
}
