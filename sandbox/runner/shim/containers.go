package shim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	_ "github.com/opencontainers/cgroups/devices" // device rules for the container cgroup
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Exit is how a container's init process ended.
type Exit struct {
	Code   int       `json:"code"`
	Signal string    `json:"signal,omitempty"`
	At     time.Time `json:"at"`
}

// Containers runs containers with libcontainer. Its state root (libcontainer's
// own per-container state) must not contain the shim binary's directory.
type Containers struct {
	root string
	mu   sync.Mutex
	ctrs map[string]*container
	// startMu is held from an init's start to its registration, so that the
	// orphan reaper never takes an init for an orphan (reap.go).
	startMu sync.Mutex
}

type container struct {
	c       *libcontainer.Container
	process *libcontainer.Process
	pid     int
	log     *os.File
	exited  chan struct{}
	exit    Exit
}

// NewContainers uses root for libcontainer's state.
func NewContainers(root string) (*Containers, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &Containers{root: root, ctrs: map[string]*container{}}, nil
}

// Create makes the container and its init process, stopped before exec, with
// stdout and stderr written to logPath in the CRI format.
func (cs *Containers) Create(id string, spec *specs.Spec, logPath string) (retErr error) {
	if _, err := cs.get(id); err == nil {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrAlreadyExists)
	}
	if spec.Process == nil || spec.Process.Terminal {
		return fmt.Errorf("container %s: a process without a terminal is needed (TTYs come later): %w", id, errdefs.ErrInvalidArgument)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: id, Spec: spec, NoNewKeyring: true})
	if err != nil {
		return fmt.Errorf("container %s: spec: %v: %w", id, err, errdefs.ErrInvalidArgument)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0o640)
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
	p, streams, err := newProcess(spec.Process)
	if err != nil {
		return err
	}
	cs.startMu.Lock()
	defer cs.startMu.Unlock()
	if err := c.Start(p); err != nil {
		streams.close()
		return fmt.Errorf("start init of %s: %w", id, err)
	}
	streams.closeChildEnds()
	pid, _ := p.Pid()
	ctr := &container{c: c, process: p, pid: pid, log: logf, exited: make(chan struct{})}
	w := &logWriter{out: logf, now: time.Now}
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); _ = w.copyStream("stdout", streams.stdout) }()
	go func() { defer copying.Done(); _ = w.copyStream("stderr", streams.stderr) }()
	go ctr.wait(&copying)
	cs.mu.Lock()
	cs.ctrs[id] = ctr
	cs.mu.Unlock()
	return nil
}

// pipes hold a process's stdout and stderr.
type pipes struct {
	stdout, stderr           *os.File // our ends
	stdoutChild, stderrChild *os.File
}

func (p *pipes) closeChildEnds() { p.stdoutChild.Close(); p.stderrChild.Close() }
func (p *pipes) close()          { p.closeChildEnds(); p.stdout.Close(); p.stderr.Close() }

func newProcess(sp *specs.Process) (*libcontainer.Process, *pipes, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	p := &libcontainer.Process{
		Args: sp.Args, Env: sp.Env, Cwd: sp.Cwd,
		UID: int(sp.User.UID), GID: int(sp.User.GID),
		Stdout: outW, Stderr: errW, Init: true,
	}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	return p, &pipes{stdout: outR, stderr: errR, stdoutChild: outW, stderrChild: errW}, nil
}

// wait records the init's exit once its output is fully logged.
func (c *container) wait(copying *sync.WaitGroup) {
	state, err := c.process.Wait()
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
	copying.Wait()
	c.log.Close()
	c.exit = exit
	close(c.exited)
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
	return os.RemoveAll(filepath.Join(cs.root, id))
}

func (cs *Containers) count() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.ctrs)
}
