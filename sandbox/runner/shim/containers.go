package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Exit is how a container's init process ended.
type Exit struct {
	Code   int
	Signal string
	Reason string
	At     time.Time
}

// Containers runs containers with libcontainer, through berth-runtime
// helpers. Its state root (libcontainer's own per-container state) must not
// contain the runtime binary's directory.
type Containers struct {
	root    string
	runtime string
	mu      sync.Mutex
	ctrs    map[string]*container
	// seq numbers exits; changed is closed (and replaced) at each one.
	seq     uint64
	changed chan struct{}
	// waited are the pids that a waiter of the shim's reaps: the helpers
	// (exec.Cmd waits for them) and the inits (their container's waiter).
	waited map[int]bool
	// sessions are the interactive execs, by exec ID.
	sessions map[string]*session
	// starting counts the processes between their start and their
	// registration in waited: a helper until its pid is registered, a
	// create's init until it is adopted. While any is, the orphan reaper
	// leaves unknown zombies alone, and reaps again once none is (reap.go).
	starting     int
	reapDeferred bool
	reapAgain    chan struct{}
	// creating is read-held by each Create, so that listing waits for the
	// creates in flight: after a crash of berthd, its successor must see
	// what the creates it never heard back from made.
	creating sync.RWMutex
	// deleted are the IDs deleted before any create of theirs reached the
	// shim: berthd rolls back a create whose call failed, and the request
	// may still be on its way. Such a create is refused.
	deleted map[string]bool
}

type container struct {
	// pid is the init's; pidfd refers to it until it is reaped.
	pid         int
	pidfd       *os.File
	cgroupPaths map[string]string
	// privatePID says the container has a PID namespace of its own;
	// poststop that its spec has poststop hooks (see destroy.go).
	privatePID, poststop bool
	stdio                *stdio
	// taps copy each output stream to attached sessions; stdinOnce closes
	// stdin after the first attached session's stdin ends.
	taps      map[string]*tap
	stdinOnce bool
	logPath   string
	logw      *logWriter
	spec      *specs.Process // for exec'd processes
	exited    chan struct{}
	exit      Exit
	exitSeq   uint64
}

// NewContainers uses root for libcontainer's state and the berth-runtime
// binary runtime for the operations.
func NewContainers(root, runtime string) (*Containers, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Containers{root: root, runtime: runtime, ctrs: map[string]*container{}, changed: make(chan struct{}), waited: map[int]bool{},
		reapAgain: make(chan struct{}, 1),
		sessions:  map[string]*session{}, deleted: map[string]bool{}}, nil
}

// Create makes the container and its init process, stopped before exec, with
// its stdio wired as wiring says.
func (cs *Containers) Create(id string, spec *specs.Spec, wiring runner.IO) (retErr error) {
	cs.creating.RLock()
	defer cs.creating.RUnlock()
	if _, err := cs.get(id); err == nil {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	cs.mu.Lock()
	deleted := cs.deleted[id]
	cs.mu.Unlock()
	if deleted {
		return fmt.Errorf("container %s was deleted before its create: %w", id, errdefs.ErrFailedPrecondition)
	}
	if spec.Process == nil {
		return fmt.Errorf("container %s: the spec has no process: %w", id, errdefs.ErrInvalidArgument)
	}
	logf, err := openLog(wiring.LogPath)
	if err != nil {
		return fmt.Errorf("container %s: log: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			logf.Close()
		}
	}()
	st, req, files, err := newStdio(spec.Process.Terminal, wiring.Stdin)
	if err != nil {
		return err
	}
	req.ID, req.Spec = id, spec
	ctr, err := cs.startInit(req, files, st)
	if err != nil {
		return err
	}
	ctr.privatePID, ctr.poststop = privatePIDNamespace(spec), hasPoststop(spec)
	ctr.logPath, ctr.logw, ctr.spec = wiring.LogPath, &logWriter{out: logf, now: time.Now, name: id}, spec.Process
	ctr.stdinOnce, ctr.taps = wiring.StdinOnce, map[string]*tap{}
	var copying sync.WaitGroup
	for stream, r := range st.outputs() {
		t := newTap()
		ctr.taps[stream] = t
		copying.Add(1)
		go func() { defer copying.Done(); _ = ctr.logw.copyStream(stream, io.TeeReader(r, t)) }()
	}
	go cs.wait(id, ctr, &copying)
	cs.mu.Lock()
	cs.ctrs[id] = ctr
	cs.mu.Unlock()
	return nil
}

func privatePIDNamespace(spec *specs.Spec) bool {
	return spec.Linux != nil && slices.ContainsFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.PIDNamespace && ns.Path == ""
	})
}

// startInit runs the create helper and adopts the init it started, counted
// as starting until then, so that the orphan reaper never takes the init;
// with a terminal, it receives the init's pty master. It holds no lock
// across the create: the pod's other containers are served meanwhile.
func (cs *Containers) startInit(req runner.HelperRequest, files []*os.File, st *stdio) (*container, error) {
	cs.beginStart()
	defer cs.endStart()
	h, err := cs.startHelper(runner.HelperCreate, req, files)
	st.closeChildEnds()
	if err != nil {
		st.close()
		return nil, err
	}
	reply, err := cs.waitHelper(h) // a create that fails removes what it made
	if err != nil {
		st.close()
		return nil, err
	}
	// The helper has exited: the init is the shim's child now, and its
	// container's waiter reaps it.
	cs.setWaited(reply.PID, true)
	c := &container{pid: reply.PID, cgroupPaths: reply.CgroupPaths, stdio: st, exited: make(chan struct{})}
	c.pidfd, err = openPidfd(reply.PID)
	if err == nil && st.consoleSocket != nil {
		// The init sent its pty master before the helper replied.
		st.console, err = receiveConsole(st.consoleSocket)
		st.consoleSocket.Close()
		st.consoleSocket = nil
	}
	if err != nil {
		st.close()
		if c.pidfd != nil {
			c.pidfd.Close()
		}
		// The init dies with its container; the orphan reaper reaps it.
		cs.setWaited(reply.PID, false)
		_, _ = cs.helper(runner.HelperDelete, runner.HelperRequest{ID: req.ID})
		return nil, fmt.Errorf("adopt init of %s: %w", req.ID, err)
	}
	return c, nil
}

// openPidfd opens a pidfd of pid, non-blocking, so that Go's poller waits
// for its exit.
func openPidfd(pid int) (*os.File, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "pidfd"), nil
}

// openLog opens a container's log for appending, never through a symlink.
func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
}

// ReopenLog reopens a running container's log file (after the kubelet
// rotated it): records from now on go to a file at the same path.
func (cs *Containers) ReopenLog(id string) error {
	c, err := cs.running(id)
	if err != nil {
		return err
	}
	f, err := openLog(c.logPath)
	if err != nil {
		return fmt.Errorf("reopen log of %s: %w", id, err)
	}
	old, ok := c.logw.replace(f).(io.Closer)
	if !ok { // the init exited meanwhile and its log was closed
		c.logw.replace(io.Discard)
		f.Close()
		return fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	return old.Close()
}

// stdio holds our ends of a process's stdin, stdout and stderr: pipes, or
// the pty master of a terminal (which is all three).
type stdio struct {
	stdin, stdout, stderr *os.File
	console               *os.File
	consoleSocket         *os.File
	childEnds             []*os.File // closed once the process started
}

// outputs maps each stream to log to what it is read from.
func (s *stdio) outputs() map[string]*os.File {
	if s.console != nil {
		return map[string]*os.File{"stdout": s.console}
	}
	return map[string]*os.File{"stdout": s.stdout, "stderr": s.stderr}
}

// pipe makes a pipe the process writes to (or, when !output, reads from):
// it returns our end and keeps the process's end in childEnds.
func (s *stdio) pipe(output bool) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	if output {
		s.childEnds = append(s.childEnds, w)
		return r, nil
	}
	s.childEnds = append(s.childEnds, r)
	return w, nil
}

func (s *stdio) closeChildEnds() {
	for _, f := range s.childEnds {
		f.Close()
	}
	s.childEnds = nil
}

func (s *stdio) close() {
	s.closeChildEnds()
	for _, f := range []*os.File{s.stdin, s.stdout, s.stderr, s.console, s.consoleSocket} {
		if f != nil {
			f.Close()
		}
	}
}

// newStdio makes a process's stdio: a terminal (a console socket on which
// the process sends its master), or pipes for stdout and stderr and, with
// stdin, for stdin (/dev/null otherwise). It returns the request's
// descriptors and the helper's files they are.
func newStdio(terminal, stdin bool) (_ *stdio, req runner.HelperRequest, _ []*os.File, retErr error) {
	st := &stdio{}
	defer func() {
		if retErr != nil {
			st.close()
		}
	}()
	if terminal {
		ours, theirs, err := consoleSocket()
		if err != nil {
			return nil, req, nil, err
		}
		st.consoleSocket = ours
		st.childEnds = append(st.childEnds, theirs)
		req.Console = 3
		return st, req, st.childEnds, nil
	}
	var err error
	if st.stdout, err = st.pipe(true); err != nil {
		return nil, req, nil, err
	}
	if st.stderr, err = st.pipe(true); err != nil {
		return nil, req, nil, err
	}
	req.Stdout, req.Stderr = 3, 4
	if stdin {
		if st.stdin, err = st.pipe(false); err != nil {
			return nil, req, nil, err
		}
		req.Stdin = 5
	}
	return st, req, st.childEnds, nil
}

// wait records the init's exit, durably, once what it left in a shared PID
// namespace is killed (leftovers.go) and its output fully logged.
func (cs *Containers) wait(id string, c *container, copying *sync.WaitGroup) {
	exit := c.reap()
	cs.setWaited(c.pid, false)
	if !c.privatePID {
		if err := cs.killLeftovers(id, c); err != nil {
			fmt.Fprintf(os.Stderr, "berth-shim: container %s: %v\n", id, err)
		}
	}
	exit.Reason = exitReason(exit.Code, c.cgroupPaths)
	// A process the init left behind may keep its output open: read what
	// is left for a while, then stop.
	runner.AwaitOutput(copying, runner.OutputGrace)
	c.stdio.close()
	copying.Wait()
	for _, t := range c.taps {
		t.close() // attached sessions see EOF
	}
	if f, ok := c.logw.close().(io.Closer); ok {
		f.Close()
	}
	if err := cs.writeExit(id, exit); err != nil {
		fmt.Fprintf(os.Stderr, "berth-shim: record exit of %s: %v\n", id, err)
	}
	cs.noteExit(c, exit)
}

// reap waits until the init exits, in Go's poller (a pidfd is readable once
// its process exited: no thread blocks per container), reaps it and
// returns how it ended.
func (c *container) reap() Exit {
	var ws unix.WaitStatus
	rc, err := c.pidfd.SyscallConn()
	if err == nil {
		err = rc.Read(func(uintptr) bool {
			pid, werr := unix.Wait4(c.pid, &ws, unix.WNOHANG, nil)
			return pid != 0 || (werr != nil && werr != unix.EINTR)
		})
	}
	exit := Exit{Code: -1, At: time.Now().UTC()}
	if err == nil {
		exit.Code, exit.Signal = runner.ExitCode(ws)
	}
	return exit
}

// signal sends sig to the init through its pidfd: never to another process
// that got its pid.
func (c *container) signal(sig syscall.Signal) error {
	rc, err := c.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	if serr == unix.ESRCH {
		return nil // it has exited
	}
	return serr
}

func (cs *Containers) get(id string) (*container, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c, ok := cs.ctrs[id]
	if !ok {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// running returns the container if its init has not exited, else
// FailedPrecondition.
func (cs *Containers) running(id string) (*container, error) {
	c, err := cs.get(id)
	if err != nil {
		return nil, err
	}
	if runner.Closed(c.exited) {
		return nil, fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

// Start lets the created init exec the container's command, as runc start
// does: the init waits to open its exec FIFO for writing, writes a byte once
// a reader opened it, then execs; the FIFO's removal marks it started.
func (cs *Containers) Start(id string) error {
	c, err := cs.running(id)
	if err != nil {
		return err
	}
	path := filepath.Join(cs.root, id, runner.ExecFifo)
	opened := make(chan *os.File, 1)
	openErr := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			openErr <- err
			return
		}
		opened <- f
	}()
	var f *os.File
	select {
	case f = <-opened:
	case err := <-openErr:
		return fmt.Errorf("start container %s: %v: %w", id, err, errdefs.ErrFailedPrecondition)
	case <-c.exited:
		// A writer ends the blocked open; then there is no init to start.
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0); err == nil {
			w.Close()
		}
		select {
		case f := <-opened:
			f.Close()
		case <-openErr:
		}
		return fmt.Errorf("container %s exited before it started: %w", id, errdefs.ErrFailedPrecondition)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || len(b) == 0 {
		return fmt.Errorf("start container %s: its init did not start (%v): %w", id, err, errdefs.ErrFailedPrecondition)
	}
	return os.Remove(path)
}

// Signal sends sig to the container's init; SIGKILL kills every process of
// a container that has no PID namespace of its own (with one, the kernel
// does when its init dies).
func (cs *Containers) Signal(id string, sig syscall.Signal) error {
	c, err := cs.get(id)
	if err != nil {
		return err
	}
	if runner.Closed(c.exited) {
		return nil
	}
	if sig == syscall.SIGKILL && !c.privatePID {
		_, err = cs.helper(runner.HelperSignal, runner.HelperRequest{ID: id, Signal: int(sig)})
	} else {
		err = c.signal(sig)
	}
	if err != nil {
		return fmt.Errorf("signal container %s: %w", id, err)
	}
	return nil
}

// Wait returns the container's exit once it has exited, or ok=false when
// timeout passes first.
func (cs *Containers) Wait(id string, timeout time.Duration) (Exit, bool, error) {
	c, err := cs.get(id)
	if err != nil {
		return Exit{}, false, err
	}
	if !runner.ClosedWithin(c.exited, timeout) {
		return Exit{}, false, nil
	}
	return c.exit, true, nil
}

// Delete kills what is left of the container and removes its state and cgroup.
// An unknown ID is deleted too: a create of it in flight finishes first and
// is then deleted, one that comes later is refused.
func (cs *Containers) Delete(id string) error {
	c, err := cs.get(id)
	if errdefs.IsNotFound(err) {
		c, err = cs.awaitCreate(id)
	}
	if err != nil || c == nil {
		return err
	}
	_ = cs.Signal(id, syscall.SIGKILL)
	<-c.exited
	if err := cs.destroy(id, c); err != nil {
		return err
	}
	cs.mu.Lock()
	delete(cs.ctrs, id)
	cs.mu.Unlock()
	c.pidfd.Close()
	if err := os.Remove(runner.ExitFile(cs.root, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(filepath.Join(cs.root, id))
}

// awaitCreate waits for the creates in flight and returns id's container if
// one of them made it; otherwise it marks id deleted.
func (cs *Containers) awaitCreate(id string) (*container, error) {
	cs.creating.Lock()
	defer cs.creating.Unlock()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.ctrs[id]; ok {
		return c, nil
	}
	cs.deleted[id] = true
	return nil, nil
}

// Update sets the cgroup resources CRI may change on a created or running
// container (see runner/helper).
func (cs *Containers) Update(id string, r *specs.LinuxResources) error {
	if _, err := cs.running(id); err != nil {
		return err
	}
	_, err := cs.helper(runner.HelperUpdate, runner.HelperRequest{ID: id, Resources: r})
	return err
}

// IDs lists the containers the shim holds, once the creates in flight are
// done.
func (cs *Containers) IDs() []string {
	cs.creating.Lock()
	defer cs.creating.Unlock()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	ids := make([]string, 0, len(cs.ctrs))
	for id := range cs.ctrs {
		ids = append(ids, id)
	}
	return ids
}

func (cs *Containers) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.ctrs)
}
