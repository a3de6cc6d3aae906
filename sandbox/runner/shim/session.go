package shim

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// session is an interactive exec: its process, its terminal (if any) and,
// once it ended, its exit code.
type session struct {
	helper  *helperCall // the exec helper, the process's parent
	console *os.File
	done    chan struct{}
	code    int
}

// fifos are our ends of a session's FIFOs (nil for a stream left out).
type fifos struct{ stdin, stdout, stderr *os.File }

func (f *fifos) close() {
	for _, file := range []*os.File{f.stdin, f.stdout, f.stderr} {
		if file != nil {
			file.Close()
		}
	}
}

// openFifos opens the caller's FIFOs ("" for a stream left out) without
// blocking: it has them open on its side already; a FIFO nobody reads fails
// instead of hanging the shim.
func openFifos(stdin, stdout, stderr string) (*fifos, error) {
	f := &fifos{}
	for _, s := range []struct {
		path string
		file **os.File
		flag int
	}{{stdin, &f.stdin, os.O_RDONLY}, {stdout, &f.stdout, os.O_WRONLY}, {stderr, &f.stderr, os.O_WRONLY}} {
		if s.path == "" {
			continue
		}
		file, err := os.OpenFile(s.path, s.flag|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if err != nil {
			f.close()
			return nil, fmt.Errorf("open %s: %w", s.path, err)
		}
		*s.file = file
	}
	return f, nil
}

// ExecStart starts an interactive process in a running container, its stdio
// on the caller's FIFOs, or on a terminal whose I/O the shim copies to and
// from them.
func (cs *Containers) ExecStart(a runner.ExecStartArgs) error {
	c, err := cs.running(a.ID)
	if err != nil {
		return err
	}
	if len(a.Args) == 0 || a.ExecID == "" {
		return fmt.Errorf("exec needs an ID and a command: %w", errdefs.ErrInvalidArgument)
	}
	cs.mu.Lock()
	_, taken := cs.sessions[a.ExecID]
	cs.mu.Unlock()
	if taken {
		return fmt.Errorf("exec session %s: %w", a.ExecID, errdefs.ErrAlreadyExists)
	}
	f, err := openFifos(a.Stdin, a.Stdout, a.Stderr)
	if err != nil {
		return err
	}
	req := runner.HelperRequest{ID: a.ID, Process: execProcess(c.spec, a.Args)}
	s := &session{done: make(chan struct{})}
	if a.TTY {
		err = cs.startTerminal(req, a, f, s)
	} else {
		err = cs.startPlain(req, f, s)
	}
	if err != nil {
		f.close()
		return fmt.Errorf("exec in %s: %w", a.ID, err)
	}
	cs.mu.Lock()
	cs.sessions[a.ExecID] = s
	cs.mu.Unlock()
	go cs.endSession(s, f)
	return nil
}

// startPlain gives the process the FIFOs themselves as stdio (set blocking,
// as a process expects); the shim keeps no copy.
func (cs *Containers) startPlain(req runner.HelperRequest, f *fifos, s *session) error {
	var files []*os.File
	for _, stream := range []struct {
		file *os.File
		fd   *int
	}{{f.stdin, &req.Stdin}, {f.stdout, &req.Stdout}, {f.stderr, &req.Stderr}} {
		if stream.file != nil {
			files = append(files, blocking(stream.file))
			*stream.fd = 2 + len(files)
		}
	}
	h, err := cs.startHelper(runner.HelperExec, req, files)
	if err != nil {
		return err
	}
	f.close()
	s.helper = h
	return nil
}

func blocking(f *os.File) *os.File {
	f.Fd() // leaves the descriptor in blocking mode
	return f
}

// startTerminal runs the process on a new terminal and copies its output to
// the stdout FIFO and the stdin FIFO to it.
func (cs *Containers) startTerminal(req runner.HelperRequest, a runner.ExecStartArgs, f *fifos, s *session) error {
	ours, theirs, err := consoleSocket()
	if err != nil {
		return err
	}
	defer ours.Close()
	req.Console, req.Width, req.Height = 3, a.Width, a.Height
	h, err := cs.startHelper(runner.HelperExec, req, []*os.File{theirs})
	theirs.Close()
	if err != nil {
		return err
	}
	master, err := receiveConsole(ours)
	if err != nil {
		_ = h.kill()
		_, _ = cs.waitHelper(h)
		return err
	}
	s.helper, s.console = h, master
	if f.stdin != nil {
		go func() { _, _ = io.Copy(master, f.stdin) }()
	}
	return nil
}

// endSession waits for the process, lets the terminal's last output through,
// closes the streams (the caller sees EOF) and records the exit code.
func (cs *Containers) endSession(s *session, f *fifos) {
	var output sync.WaitGroup
	if s.console != nil && f.stdout != nil {
		output.Add(1)
		go func() { defer output.Done(); _, _ = io.Copy(f.stdout, s.console) }()
	}
	reply, err := cs.waitHelper(s.helper)
	if s.console != nil {
		runner.AwaitOutput(&output, runner.OutputGrace)
		s.console.Close()
		f.close()
		output.Wait()
	}
	s.code = reply.ExitCode
	if err != nil {
		s.code = -1
		fmt.Fprintf(os.Stderr, "berth-shim: exec session: %v\n", err)
	}
	close(s.done)
}

func (cs *Containers) session(execID string) (*session, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	s, ok := cs.sessions[execID]
	if !ok {
		return nil, fmt.Errorf("exec session %s: %w", execID, errdefs.ErrNotFound)
	}
	return s, nil
}

// ExecWait waits at most timeout for a session's process to exit; once an
// exit is reported the session is forgotten.
func (cs *Containers) ExecWait(execID string, timeout time.Duration) (runner.ExecWaitReply, error) {
	s, err := cs.session(execID)
	if err != nil {
		return runner.ExecWaitReply{}, err
	}
	if !runner.ClosedWithin(s.done, timeout) {
		return runner.ExecWaitReply{}, nil
	}
	cs.mu.Lock()
	delete(cs.sessions, execID)
	cs.mu.Unlock()
	return runner.ExecWaitReply{Exited: true, ExitCode: s.code}, nil
}

// ExecKill kills a session's process.
func (cs *Containers) ExecKill(execID string) error {
	s, err := cs.session(execID)
	if err != nil {
		return err
	}
	return s.helper.kill()
}

// Resize sets the terminal size of a session.
func (cs *Containers) Resize(execID string, width, height uint16) error {
	s, err := cs.session(execID)
	if err != nil {
		return err
	}
	if s.console == nil {
		return fmt.Errorf("exec session %s has no terminal: %w", execID, errdefs.ErrFailedPrecondition)
	}
	return setWinsize(s.console, width, height)
}

func setWinsize(console *os.File, width, height uint16) error {
	return unix.IoctlSetWinsize(int(console.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: width, Row: height})
}
