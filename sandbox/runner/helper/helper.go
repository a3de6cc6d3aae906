// Package helper is berth-runtime's side of the helper protocol
// (runner/helper.go): each berth-runtime process runs one libcontainer
// operation on one container of a shim's state root, answers, and exits.
// berth-shim, which lives as long as its pod, starts them and links no
// libcontainer: a process that does pays for it in memory all its life.
//
// A created init is the create helper's child until the helper exits; the
// shim, a child subreaper, then adopts and reaps it. An exec'd process is
// the exec helper's child: the helper waits for it and replies its exit.
package helper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/containerd/errdefs"
	_ "github.com/opencontainers/cgroups/devices" // device rules for the container cgroup
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Main runs operation op with the request on stdin, replies on stdout and
// returns the exit status.
func Main(op string) int {
	reply, err := run(op, os.Stdin)
	if err != nil {
		reply = runner.HelperReply{Error: runner.EncodeError(err).Error()}
	}
	if err := json.NewEncoder(os.Stdout).Encode(reply); err != nil {
		return 1
	}
	if reply.Error != "" {
		return 1
	}
	return 0
}

func run(op string, in io.Reader) (runner.HelperReply, error) {
	var req runner.HelperRequest
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return runner.HelperReply{}, fmt.Errorf("request: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	if req.Root == "" || req.ID == "" {
		return runner.HelperReply{}, fmt.Errorf("request without root or ID: %w", errdefs.ErrInvalidArgument)
	}
	switch op {
	case runner.HelperCreate:
		return create(&req)
	case runner.HelperExec:
		return execute(&req)
	case runner.HelperUpdate, runner.HelperSignal, runner.HelperDelete:
	default:
		return runner.HelperReply{}, fmt.Errorf("unknown operation %q: %w", op, errdefs.ErrInvalidArgument)
	}
	c, err := libcontainer.Load(req.Root, req.ID)
	if errors.Is(err, libcontainer.ErrNotExist) && op == runner.HelperDelete {
		return runner.HelperReply{}, nil
	}
	if err != nil {
		return runner.HelperReply{}, fmt.Errorf("container %s: %v: %w", req.ID, err, errdefs.ErrNotFound)
	}
	switch op {
	case runner.HelperUpdate:
		err = update(c, req.Resources)
	case runner.HelperSignal:
		err = c.Signal(syscall.Signal(req.Signal))
		if errors.Is(err, libcontainer.ErrNotRunning) {
			err = nil
		}
	case runner.HelperDelete:
		err = c.Destroy()
	}
	if err != nil {
		return runner.HelperReply{}, fmt.Errorf("%s container %s: %w", op, req.ID, err)
	}
	return runner.HelperReply{}, nil
}

// create makes the container and starts its init, which waits for start
// before it execs; the init outlives the helper.
func create(req *runner.HelperRequest) (_ runner.HelperReply, retErr error) {
	spec := req.Spec
	if spec == nil || spec.Process == nil {
		return runner.HelperReply{}, fmt.Errorf("container %s: no spec or process: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	cfg, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{CgroupName: req.ID, Spec: spec, NoNewKeyring: true})
	if err != nil {
		return runner.HelperReply{}, fmt.Errorf("container %s: spec: %v: %w", req.ID, err, errdefs.ErrInvalidArgument)
	}
	c, err := libcontainer.Create(req.Root, req.ID, cfg)
	if err != nil {
		return runner.HelperReply{}, fmt.Errorf("create container %s: %w", req.ID, err)
	}
	defer func() {
		if retErr != nil {
			_ = c.Destroy()
		}
	}()
	p := newProcess(spec.Process, req)
	p.Init = true
	if err := c.Start(p); err != nil {
		return runner.HelperReply{}, fmt.Errorf("start init of %s: %w", req.ID, err)
	}
	pid, err := p.Pid()
	if err != nil {
		return runner.HelperReply{}, err
	}
	if err := writeProcess(req.Root, req.ID, spec.Process); err != nil {
		return runner.HelperReply{}, err
	}
	st, err := c.State()
	if err != nil {
		return runner.HelperReply{}, err
	}
	return runner.HelperReply{PID: pid, CgroupPaths: st.CgroupPaths}, nil
}

// execute runs the request's process in the running container and waits
// for it; SIGTERM kills it.
func execute(req *runner.HelperRequest) (runner.HelperReply, error) {
	if req.Process == nil || len(req.Process.Args) == 0 {
		return runner.HelperReply{}, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, err := libcontainer.Load(req.Root, req.ID)
	if err != nil {
		return runner.HelperReply{}, fmt.Errorf("container %s: %v: %w", req.ID, err, errdefs.ErrNotFound)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	p := newProcess(req.Process, req)
	if err := c.Run(p); err != nil {
		return runner.HelperReply{}, fmt.Errorf("exec in %s: %w", req.ID, err)
	}
	done := make(chan runner.HelperReply, 1)
	go func() {
		state, err := p.Wait()
		done <- runner.HelperReply{ExitCode: exitCode(state, err)}
	}()
	select {
	case r := <-done:
		return r, nil
	case <-term:
		_ = p.Signal(unix.SIGKILL)
		return <-done, nil
	}
}

// exitCode is how Process.Wait says the process ended.
func exitCode(state *os.ProcessState, err error) int {
	var ee *exec.ExitError
	if state == nil && errors.As(err, &ee) {
		state = ee.ProcessState
	}
	if state == nil {
		return -1
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok {
		return -1
	}
	code, _ := runner.ExitCode(unix.WaitStatus(ws))
	return code
}

// newProcess runs sp (as its user, with its environment, working dir and
// LSM labels) with the request's descriptors as stdio.
func newProcess(sp *specs.Process, req *runner.HelperRequest) *libcontainer.Process {
	p := BaseProcess(sp, sp.Args)
	// (A nil *os.File in an io.Reader is no nil Reader: set only those given.)
	if f := inherited(req.Stdin); f != nil {
		p.Stdin = f
	}
	if f := inherited(req.Stdout); f != nil {
		p.Stdout = f
	}
	if f := inherited(req.Stderr); f != nil {
		p.Stderr = f
	}
	if req.Console != 0 {
		p.ConsoleSocket = inherited(req.Console)
		p.ConsoleWidth, p.ConsoleHeight = req.Width, req.Height
	}
	return p
}

// inherited is the helper's descriptor fd (nil for none), close-on-exec: it
// reaches the container's process only as the stdio it is made.
func inherited(fd int) *os.File {
	if fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), fmt.Sprintf("fd%d", fd))
}

// BaseProcess runs args as sp's user, with its environment, working dir and
// AppArmor and SELinux labels (libcontainer applies them per process, not per
// container: without them here, no process of the container would be
// confined), with no stdio yet.
func BaseProcess(sp *specs.Process, args []string) *libcontainer.Process {
	p := &libcontainer.Process{Args: args, Env: sp.Env, Cwd: sp.Cwd, UID: int(sp.User.UID), GID: int(sp.User.GID),
		AppArmorProfile: sp.ApparmorProfile, Label: sp.SelinuxLabel}
	for _, g := range sp.User.AdditionalGids {
		p.AdditionalGroups = append(p.AdditionalGroups, int(g))
	}
	return p
}
