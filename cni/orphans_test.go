package cni

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-cri/berth/test/wait"
)

// startGroup starts a command in a process group of its own, as a plugin
// is, and reaps it in the background (init would reap an orphan).
func startGroup(t *testing.T, args ...string) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return cmd, done
}

// A plugin the last berthd left running is waited for until it ends; one
// past its deadline is killed with its group; a note whose process is gone
// (or whose pid now names another process) is only dropped.
func TestAwaitOrphans(t *testing.T) {
	m := &Manager{opts: Options{CacheDir: t.TempDir()}}
	go_ := filepath.Join(t.TempDir(), "go")
	ending, endingDone := startGroup(t, "sh", "-c", "until [ -e "+go_+" ]; do sleep 0.02; done")
	m.noteRunning(ending.Process.Pid, time.Now().Add(time.Hour))
	stuck, stuckDone := startGroup(t, "sleep", "1000")
	m.noteRunning(stuck.Process.Pid, time.Now().Add(-time.Second))
	other, otherDone := startGroup(t, "sleep", "1000")
	note := filepath.Join(m.runningDir(), strconv.Itoa(other.Process.Pid))
	if err := os.WriteFile(note, fmt.Appendf(nil, "1 %d\n", time.Now().Add(time.Hour).Unix()), 0o600); err != nil {
		t.Fatal(err)
	}
	finished := make(chan struct{})
	go func() { m.awaitOrphans(context.Background()); close(finished) }()
	// The stuck one is killed at once (past its deadline); the ending one
	// is waited for.
	if err := wait.Receive(t, "the plugin past its deadline", stuckDone); err == nil {
		t.Fatal("the plugin past its deadline exited by itself?")
	}
	select {
	case <-finished:
		t.Fatal("awaitOrphans returned while a plugin of the last berthd still ran")
	default:
	}
	if err := os.WriteFile(go_, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := wait.Receive(t, "the ending plugin", endingDone); err != nil {
		t.Fatalf("the plugin that ended by itself: %v", err)
	}
	wait.Receive(t, "awaitOrphans", finished)
	select {
	case err := <-otherDone:
		t.Fatalf("a process whose start time differs from the note's was killed: %v", err)
	default:
	}
	if left, _ := os.ReadDir(m.runningDir()); len(left) != 0 {
		t.Fatalf("notes left: %v", left)
	}
}
