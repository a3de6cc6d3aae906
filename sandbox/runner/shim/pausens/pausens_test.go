package pausens

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startPause runs the test binary as a pause (its constructor never returns
// to Go) in a new PID namespace, its root mounted on a temp dir, with a
// lifeline; it is killed at the end of the test.
func startPause(t *testing.T) (*exec.Cmd, *os.File) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	root, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.ExtraFiles = []*os.File{r, root}
	cmd.Env = append(os.Environ(), RootEnv+"=4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		w.Close()
	})
	return cmd, w
}

// setUp waits (up to 10 s) until the pause waits for its signals, and
// returns its /proc status then.
func setUp(t *testing.T, pid int) string {
	t.Helper()
	var status string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		// SIGCHLD, SIGTERM and SIGINT blocked (read from a signalfd).
		if status = string(data); strings.Contains(status, "SigBlk:\t0000000000014002") {
			return status
		}
	}
	t.Fatalf("the pause did not set up:\n%s", status)
	return ""
}

// exited waits (up to 10 s) for the pause to exit and returns its status.
func exited(t *testing.T, cmd *exec.Cmd) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the pause did not exit")
		return nil
	}
}

func TestPauseIsConfined(t *testing.T) {
	cmd, _ := startPause(t)
	pid := cmd.Process.Pid
	status := setUp(t, pid)
	// One thread: Go never started.
	for _, want := range []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Threads:\t1\n"} {
		if !strings.Contains(status, want) {
			t.Errorf("pause status lacks %q:\n%s", want, status)
		}
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/root/", pid))
	if err != nil || len(entries) != 0 {
		t.Errorf("the pause's root holds %v (%v), want an empty dir", entries, err)
	}
	// Its mount namespace holds its root, an empty read-only tmpfs, alone:
	// it keeps no host mount alive, and shows none to the pod.
	mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(mounts)), "\n")
	if f := strings.Fields(lines[0]); len(lines) != 1 || len(f) < 10 || f[4] != "/" || !strings.HasPrefix(f[5], "ro,") || f[len(f)-3] != "tmpfs" {
		t.Errorf("the pause's mounts:\n%s\nwant its root alone, a read-only tmpfs", mounts)
	}
}

func TestPauseEndsOnSIGTERM(t *testing.T) {
	cmd, _ := startPause(t)
	setUp(t, cmd.Process.Pid) // (an earlier SIGTERM would be ignored: PID 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := exited(t, cmd); err != nil {
		t.Errorf("after SIGTERM: %v, want exit status 0", err)
	}
}

func TestPauseEndsWithItsLifeline(t *testing.T) {
	cmd, lifeline := startPause(t)
	lifeline.Close()
	if err := exited(t, cmd); err != nil {
		t.Errorf("after the lifeline closed: %v, want exit status 0", err)
	}
}
