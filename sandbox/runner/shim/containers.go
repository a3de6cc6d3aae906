package shim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	_ "github.com/opencontainers/cgroups/devices" // device rules for the container cgroup
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Exit is how a container's init process ended.
type Exit struct {
	Code   int
	Signal string
	Reason string
	At     time.Time
}

// Containers runs containers with libcontainer. Its state root (libcontainer's
// own per-container state) must not contain the shim binary's directory.
type Containers struct {
	root string
	mu   sync.Mutex
	ctrs map[string]*container
	// seq numbers exits; changed is closed (and replaced) at each one.
	seq     uint64
	changed chan struct{}
	// execs are the pids of exec'd processes that libcontainer waits for.
	execs map[int]bool
	// sessions are the interactive execs, by exec ID.
	sessions map[string]*session
	// startMu is held from an init's start to its registration, so that the
	// orphan reaper never takes an init for an orphan (reap.go).
	startMu sync.Mutex
	// creating is read-held by each Create, so that listing waits for the
	// creates in flight: after a crash of berthd, its successor must see
	// what the creates it never heard back from made.
	creating sync.RWMutex
}

type container struct {
	c       *libcontainer.Container
	process *libcontainer.Process
	pid     int
	stdio   *stdio
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

// NewContainers uses root for libcontainer's state.
func NewContainers(root string) (*Containers, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Containers{root: root, ctrs: map[string]*container{}, changed: make(chan struct{}), execs: map[int]bool{},
		sessions: map[string]*session{}}, nil
}

// Create makes the container and its init process, stopped before exec, with
// its stdio wired as wiring says.
func (cs *Containers) Create(id string, spec *specs.Spec, wiring runner.IO) (retErr error) {
	cs.creating.RLock()
	defer cs.creating.RUnlock()
	if _, err := cs.get(id); err == nil {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	if spec.Process == nil {
		return fmt.Errorf("container %s: the spec has no process: %w", id, errdefs.ErrInvalidArgument)
	}
	cfg, err := cs.libcontainerConfig(id, spec)
	if err != nil {
		return fmt.Errorf("container %s: spec: %v: %w", id, err, errdefs.ErrInvalidArgument)
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
	c, err := libcontainer.Create(cs.root, id, cfg)
	if err != nil {
		return fmt.Errorf("create container %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			_ = c.Destroy()
		}
	}()
	p, st, err := newProcess(spec.Process, spec.Process.Terminal, wiring.Stdin)
	if err != nil {
		return err
	}
	ctr, err := cs.startInit(c, p, st)
	if err != nil {
		return fmt.Errorf("start init of %s: %w", id, err)
	}
	ctr.logPath, ctr.logw, ctr.spec = wiring.LogPath, &logWriter{out: logf, now: time.Now}, spec.Process
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

// libcontainerConfig converts a spec. For a spec that joins a user namespace
// specconv starts a process to read the namespace's mappings and waits for
// it: under startMu, so that the orphan reaper does not take it first.
func (cs *Containers) libcontainerConfig(id string, spec *specs.Spec) (*configs.Config, error) {
	if spec.Linux != nil && slices.ContainsFunc(spec.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.UserNamespace && ns.Path != ""
	}) {
		cs.startMu.Lock()
		defer cs.startMu.Unlock()
	}
	return specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec, NoNewKeyring: true})
}

// startInit starts the init (under startMu, so that the orphan reaper never
// takes it) and, for a terminal, receives its pty master.
func (cs *Containers) startInit(c *libcontainer.Container, p *libcontainer.Process, st *stdio) (*container, error) {
	cs.startMu.Lock()
	defer cs.startMu.Unlock()
	if err := c.Start(p); err != nil {
		st.close()
		return nil, err
	}
	st.closeChildEnds()
	if st.consoleSocket != nil {
		master, err := receiveConsole(st.consoleSocket)
		st.consoleSocket.Close()
		if err != nil {
			_ = c.Signal(syscall.SIGKILL)
			_, _ = p.Wait()
			st.close()
			return nil, err
		}
		st.console = master
	}
	pid, _ := p.Pid()
	return &container{c: c, process: p, pid: pid, stdio: st, exited: make(chan struct{})}, nil
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

// newProcess makes the libcontainer process for sp with its stdio: a
// terminal, or pipes for stdout and stderr and, with stdin, for stdin
// (/dev/null otherwise).
func newProcess(sp *specs.Process, terminal, stdin bool) (_ *libcontainer.Process, _ *stdio, retErr error) {
	p := baseProcess(sp, sp.Args)
	p.Init = true
	st := &stdio{}
	defer func() {
		if retErr != nil {
			st.close()
		}
	}()
	if terminal {
		ours, theirs, err := consoleSocket()
		if err != nil {
			return nil, nil, err
		}
		st.consoleSocket, p.ConsoleSocket = ours, theirs
		st.childEnds = append(st.childEnds, theirs)
		return p, st, nil
	}
	var err error
	if st.stdout, err = st.pipe(true); err != nil {
		return nil, nil, err
	}
	if st.stderr, err = st.pipe(true); err != nil {
		return nil, nil, err
	}
	p.Stdout, p.Stderr = st.childEnds[0], st.childEnds[1]
	if stdin {
		if st.stdin, err = st.pipe(false); err != nil {
			return nil, nil, err
		}
		p.Stdin = st.childEnds[2]
	}
	return p, st, nil
}

// baseProcess runs args as sp's user, with its environment, working dir and
// AppArmor profile (libcontainer applies it per process, not per container:
// without it here, no process of the container would be confined), with no
// stdio yet.
func baseProcess(sp *specs.Process, args []string) *libcontainer.Process {
	p := &libcontainer.Process{Args: args, Env: sp.Env, Cwd: sp.Cwd, UID: int(sp.User.UID), GID: int(sp.User.GID),
		AppArmorProfile: sp.ApparmorProfile, Label: sp.SelinuxLabel}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	return p
}

// wait records the init's exit, durably, once its output is fully logged.
func (cs *Containers) wait(id string, c *container, copying *sync.WaitGroup) {
	exit := processExit(c.process.Wait())
	var paths map[string]string
	if st, err := c.c.State(); err == nil {
		paths = st.CgroupPaths
	}
	exit.Reason = exitReason(exit.Code, paths)
	// A process the init left behind may keep its output open: read what
	// is left for a while, then stop.
	waitTimeout(copying, outputGrace)
	c.stdio.close()
	copying.Wait()
	for _, t := range c.taps {
		t.close() // attached sessions see EOF
	}
	if f, ok := c.logw.replace(io.Discard).(io.Closer); ok {
		f.Close()
	}
	if err := cs.writeExit(id, exit); err != nil {
		fmt.Fprintf(os.Stderr, "berth-shim: record exit of %s: %v\n", id, err)
	}
	cs.noteExit(c, exit)
}

// processExit turns what Process.Wait returned into an exit code (128+signal
// for a signalled process) and time.
func processExit(state *os.ProcessState, err error) Exit {
	exit := Exit{Code: -1, At: time.Now().UTC()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		state = ee.ProcessState
	}
	if state != nil {
		if ws, ok := state.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				exit.Code = ws.ExitStatus()
			case ws.Signaled():
				exit.Code, exit.Signal = 128+int(ws.Signal()), ws.Signal().String()
			}
		}
	}
	return exit
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
	select {
	case <-c.exited:
		return nil, fmt.Errorf("container %s is not running: %w", id, errdefs.ErrFailedPrecondition)
	default:
		return c, nil
	}
}

// Start lets the created init exec the container's command.
func (cs *Containers) Start(id string) error {
	c, err := cs.get(id)
	if err != nil {
		return err
	}
	if err := c.c.Exec(); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// Signal sends sig to the container's init.
func (cs *Containers) Signal(id string, sig syscall.Signal) error {
	c, err := cs.get(id)
	if err != nil {
		return err
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.c.Signal(sig); err != nil && !errors.Is(err, libcontainer.ErrNotRunning) {
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
	select {
	case <-c.exited:
		return c.exit, true, nil
	case <-time.After(timeout):
		return Exit{}, false, nil
	}
}

// Delete kills what is left of the container and removes its state and cgroup.
func (cs *Containers) Delete(id string) error {
	c, err := cs.get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	_ = cs.Signal(id, syscall.SIGKILL)
	<-c.exited
	if err := c.c.Destroy(); err != nil {
		return fmt.Errorf("destroy container %s: %w", id, err)
	}
	cs.mu.Lock()
	delete(cs.ctrs, id)
	cs.mu.Unlock()
	if err := os.Remove(runner.ExitFile(cs.root, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(filepath.Join(cs.root, id))
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
