package shim

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// pause is the pod's PID 1 when its containers share one PID namespace: the
// shim starts itself as "berth-shim pause" in a new PID namespace, and the
// containers join /proc/<pid>/ns/pid.
type pause struct {
	mu  sync.Mutex
	pid int
	// lifeline's other end is the pause's fd 3: when the shim dies, however
	// it dies, the pause reads EOF and exits.
	lifeline *os.File
}

// start runs the pause process once and returns its pid.
func (p *pause) start() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid != 0 && unix.Kill(p.pid, 0) == nil {
		return p.pid, nil
	}
	if p.lifeline != nil { // the last pause died
		p.lifeline.Close()
		p.lifeline = nil
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	r, w, err := os.Pipe() // close-on-exec: no container inherits w
	if err != nil {
		return 0, err
	}
	defer r.Close()
	cmd := exec.Command(self, "pause")
	cmd.ExtraFiles = []*os.File{r}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, fmt.Errorf("start pause: %w", err)
	}
	// The orphan reaper reaps it if it ever dies: it is no container's init.
	p.pid, p.lifeline = cmd.Process.Pid, w
	return p.pid, nil
}

// RunPause is the pause process itself: it reaps what is reparented to it (it
// is PID 1 of the namespace) and ends on SIGTERM or SIGINT, or when its shim
// is gone (EOF on fd 3).
func RunPause() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		lifeline := os.NewFile(3, "lifeline")
		_, _ = lifeline.Read(make([]byte, 1))
		sigs <- syscall.SIGTERM
	}()
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var ws unix.WaitStatus
			if pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}

// stop ends the pause process, if any.
func (p *pause) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid != 0 {
		_ = unix.Kill(p.pid, unix.SIGKILL)
		p.lifeline.Close()
		p.pid, p.lifeline = 0, nil
	}
}
