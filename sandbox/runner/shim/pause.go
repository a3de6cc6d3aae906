package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// pause is the pod's PID 1 when its containers share one PID namespace: the
// shim starts "berth-runtime pause" in a new PID namespace, confined
// to an empty root without privileges (see package pausens), and the
// containers join /proc/<pid>/ns/pid.
type pause struct {
	runtime string // the berth-runtime binary, which runs the pause
	root    string // the empty dir the pause's root is mounted on
	mu      sync.Mutex
	pid     int
	// pidfd refers to the pause process itself, not to its pid number: once
	// the pause exited, a process that got the same pid is not taken for it.
	pidfd *os.File
	// lifeline's other end is the pause's fd 3: when the shim dies, however
	// it dies, the pause reads EOF and exits.
	lifeline *os.File
}

// start runs the pause process once and returns its pid. With a user
// namespace (the pin of the pod's own) the pause runs in that namespace, as
// its root, and its PID namespace is owned by it; with SELinux labels, it
// runs with the pod's.
func (p *pause) start(args runner.PauseArgs) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pid != 0 && p.alive() {
		return p.pid, nil
	}
	p.release() // the last pause died
	root, err := p.emptyRoot()
	if err != nil {
		return 0, err
	}
	defer root.Close()
	r, w, err := os.Pipe() // close-on-exec: no container inherits w
	if err != nil {
		return 0, err
	}
	defer r.Close()
	pid, err := launch(pauseCommand(p.runtime, r, root, args), args.UserNS)
	if err != nil {
		w.Close()
		return 0, fmt.Errorf("start pause: %w", err)
	}
	// The pause reported that it is set up and waits for its lifeline's EOF,
	// which we hold: it is alive as its pidfd is opened (only a SIGKILL from
	// outside could end it first, and then pidfd_open fails or the pidfd
	// reads as exited). The orphan reaper reaps it if it ever dies: it is no
	// container's init.
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		w.Close()
		_ = unix.Kill(pid, unix.SIGKILL)
		return 0, fmt.Errorf("open pidfd of pause %d: %w", pid, err)
	}
	p.pid, p.pidfd, p.lifeline = pid, os.NewFile(uintptr(fd), "pause-pidfd"), w
	return p.pid, nil
}

// alive says whether the pause has not exited: its pidfd turns readable
// when it exits, and stays so once it is reaped, whoever got its pid since.
func (p *pause) alive() bool {
	if p.pidfd == nil {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(p.pidfd.Fd()), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 0
	}
}

// release closes the handles of the last pause (which has died or was
// killed): its lifeline and its pidfd.
func (p *pause) release() {
	if p.lifeline != nil {
		p.lifeline.Close()
	}
	if p.pidfd != nil {
		p.pidfd.Close()
	}
	p.pid, p.pidfd, p.lifeline = 0, nil, nil
}

// launch starts the pause command, in the pod's user namespace if userns is
// set, and waits until the pause reports that it is set up.
func launch(cmd *exec.Cmd, userns string) (int, error) {
	report, reportW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer report.Close()
	cmd.ExtraFiles = append(cmd.ExtraFiles, reportW)
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", runner.PauseReportEnv, 2+len(cmd.ExtraFiles)))
	var pid int
	if userns == "" {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
		if err = cmd.Start(); err == nil {
			pid = cmd.Process.Pid
		}
	} else {
		pid, err = startInUserNS(cmd, userns)
	}
	reportW.Close()
	if err != nil {
		return 0, err
	}
	return pid, setUp(report)
}

// setUp reads the pause's report: nil once it says "ok", else the step that
// failed (the pause has exited then).
func setUp(report *os.File) error {
	out, err := io.ReadAll(io.LimitReader(report, 512))
	switch {
	case err != nil:
		return err
	case string(out) == "ok":
		return nil
	case len(out) == 0:
		return errors.New("the pause exited as it started")
	}
	return errors.New(string(out))
}

// emptyRoot opens (making it once) the empty dir the pause's root is mounted on.
func (p *pause) emptyRoot() (*os.File, error) {
	if err := os.Mkdir(p.root, 0o711); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	return os.Open(p.root)
}

// pauseCommand is "berth-runtime pause" with the lifeline's read end as fd 3,
// the dir to mount its root on as fd 4 and the pod's SELinux labels (its new
// PID namespace is the caller's to ask for: a clone flag, or the constructor
// in a user namespace). The pause runs in the constructor of package
// pausens, Go never starts in it; its stderr is the shim's.
func pauseCommand(runtime string, lifeline, root *os.File, args runner.PauseArgs) *exec.Cmd {
	cmd := exec.Command(runtime, "pause")
	cmd.ExtraFiles = []*os.File{lifeline, root}
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), runner.PauseRootEnv+"=4")
	if args.ProcessLabel != "" {
		cmd.Env = append(cmd.Env, runner.PauseLabelEnv+"="+args.ProcessLabel, runner.PauseMountLabelEnv+"="+args.MountLabel)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// startInUserNS starts cmd, whose constructor (package pausens) moves it into
// the user namespace pinned at userns and forks the pause, and returns the
// pause's pid. The intermediate process exits at once; the orphan reaper
// reaps it, and the shim, a subreaper, adopts the pause.
func startInUserNS(cmd *exec.Cmd, userns string) (int, error) {
	ns, err := os.Open(userns)
	if err != nil {
		return 0, err
	}
	defer ns.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	fd := 3 + len(cmd.ExtraFiles) // the descriptors ns and pw get
	cmd.ExtraFiles = append(cmd.ExtraFiles, ns, pw)
	cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%d", runner.PauseUsernsEnv, fd), fmt.Sprintf("%s=%d", runner.PausePIDFDEnv, fd+1))
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return 0, err
	}
	out, err := io.ReadAll(io.LimitReader(pr, 32))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(out))
	if err != nil {
		return 0, fmt.Errorf("the pause did not enter user namespace %s", userns)
	}
	return pid, nil
}

// stop ends the pause process, if any.
func (p *pause) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pidfd != nil {
		// Through the pidfd: a pause that exited already is not confused
		// with a process that got its pid (ESRCH then, which is fine).
		_ = unix.PidfdSendSignal(int(p.pidfd.Fd()), unix.SIGKILL, nil, 0)
	}
	p.release()
}
