package pausens

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-cri/berth/sandbox/runner"
)

// startPause runs the test binary as a pause (its constructor never returns
// to Go) in a new PID namespace, its root mounted on the dir (or file) root,
// with a lifeline; it returns what the pause reported. The pause is killed at
// the end of the test.
func startPause(t *testing.T, root string) (*exec.Cmd, *os.File, string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	rootFile, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootFile.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	report, reportW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer report.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.ExtraFiles = []*os.File{r, rootFile, reportW}
	cmd.Env = append(os.Environ(), runner.PauseRootEnv+"=4", runner.PauseReportEnv+"=5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		w.Close()
	})
	said, err := io.ReadAll(report)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, w, string(said)
}

// started is startPause on an empty dir, for a pause that must set up.
func started(t *testing.T) (*exec.Cmd, *os.File) {
	t.Helper()
	cmd, lifeline, said := startPause(t, t.TempDir())
	if said != "ok" {
		t.Fatalf("the pause reported %q, want ok", said)
	}
	return cmd, lifeline
}

// status is the pause's /proc status.
func status(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
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
	cmd, _ := started(t)
	pid := cmd.Process.Pid
	st := status(t, pid)
	// One thread: Go never started. SIGCHLD, SIGTERM and SIGINT blocked (read
	// from a signalfd).
	for _, want := range []string{"SigBlk:\t0000000000014002", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Threads:\t1\n"} {
		if !strings.Contains(st, want) {
			t.Errorf("pause status lacks %q:\n%s", want, st)
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
	cmd, _ := started(t) // (an earlier SIGTERM would be ignored: PID 1)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := exited(t, cmd); err != nil {
		t.Errorf("after SIGTERM: %v, want exit status 0", err)
	}
}

func TestPauseEndsWithItsLifeline(t *testing.T) {
	cmd, lifeline := started(t)
	lifeline.Close()
	if err := exited(t, cmd); err != nil {
		t.Errorf("after the lifeline closed: %v, want exit status 0", err)
	}
}

// A step that fails is reported (here the root is a file, not a dir), and
// the pause exits.
func TestPauseReportsAFailedStep(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, _, said := startPause(t, file)
	if said != "make a mount namespace: Not a directory" {
		t.Errorf("the pause reported %q, want the failed step", said)
	}
	if err := exited(t, cmd); err == nil {
		t.Error("the pause exited 0 after a failed step")
	}
}
