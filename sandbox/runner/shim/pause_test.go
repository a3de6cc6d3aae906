package shim

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// exitedPidfd is a pidfd of a process that has exited and been reaped.
func exitedPidfd(t *testing.T) *os.File {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	return os.NewFile(uintptr(fd), "pidfd")
}

// A pause that exited and was reaped is gone, even when another process got
// its pid (here the test itself stands for that process): start makes a new
// pause instead of handing out the stranger's pid, and stop signals no one.
func TestPauseWhosePIDWasReusedIsGone(t *testing.T) {
	p := &pause{runtime: filepath.Join(t.TempDir(), "no-such-berth-runtime"), root: filepath.Join(t.TempDir(), "pause-root")}
	p.pid, p.pidfd = os.Getpid(), exitedPidfd(t)
	if p.alive() {
		t.Fatal("an exited, reaped pause is taken as alive")
	}
	pid, err := p.start(runner.PauseArgs{})
	if err == nil {
		t.Fatalf("start handed out pid %d of a process that is not the pause", pid)
	}
	if p.pid != 0 || p.pidfd != nil {
		t.Fatalf("the dead pause's handles are kept: pid %d, pidfd %v", p.pid, p.pidfd)
	}

	p.pid, p.pidfd = os.Getpid(), exitedPidfd(t)
	p.stop() // must not SIGKILL the test, which has the pid
	if p.pid != 0 || p.pidfd != nil {
		t.Fatalf("stop kept pid %d, pidfd %v", p.pid, p.pidfd)
	}
}

// A live process's pidfd reads as alive.
func TestPauseAlive(t *testing.T) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("pidfd_open: %v", err)
	}
	p := &pause{pid: os.Getpid(), pidfd: os.NewFile(uintptr(fd), "pidfd")}
	defer p.pidfd.Close()
	if !p.alive() {
		t.Fatal("a live process is taken as exited")
	}
}
