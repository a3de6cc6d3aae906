package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Client talks to one berth-shim.
type Client struct{ conn *conn }

// Dial connects to the shim listening on socket.
func Dial(ctx context.Context, socket string) (*Client, error) {
	conn, err := DialUnix(ctx, socket)
	if err != nil {
		return nil, fmt.Errorf("connect to shim %s: %w", socket, err)
	}
	return &Client{conn: newConn(conn)}, nil
}

// Dead says whether the connection to the shim broke: the shim exited or was
// killed.
func (c *Client) Dead() bool { return c.conn.isBroken() }

// Close drops the connection; the shim and its containers go on.
func (c *Client) Close() error { return c.conn.nc.Close() }

func (c *Client) call(ctx context.Context, method string, args, reply any) error {
	return c.conn.call(ctx, ServiceName+"."+method, args, reply)
}

// Create makes a container from spec, its stdio wired as stdio says; its
// init
// waits for Start.
func (c *Client) Create(ctx context.Context, id string, spec *specs.Spec, stdio IO) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return c.call(ctx, "Create", CreateArgs{ID: id, Spec: data, IO: stdio}, &Empty{})
}

// Start runs a created container's command.
func (c *Client) Start(ctx context.Context, id string) error {
	return c.call(ctx, "Start", IDArgs{ID: id}, &Empty{})
}

// Update sets a created or running container's cgroup resources.
func (c *Client) Update(ctx context.Context, id string, r *specs.LinuxResources) error {
	return c.call(ctx, "Update", UpdateArgs{ID: id, Resources: *r}, &Empty{})
}

// Signal signals a container's init.
func (c *Client) Signal(ctx context.Context, id string, sig syscall.Signal) error {
	return c.call(ctx, "Signal", SignalArgs{ID: id, Signal: int(sig)}, &Empty{})
}

// Wait waits at most timeout for the container to exit.
func (c *Client) Wait(ctx context.Context, id string, timeout time.Duration) (WaitReply, error) {
	var r WaitReply
	err := c.call(ctx, "Wait", WaitArgs{ID: id, Timeout: timeout}, &r)
	return r, err
}

// Exits waits up to timeout for exits numbered after seq.
func (c *Client) Exits(ctx context.Context, after uint64, timeout time.Duration) ([]ExitEvent, error) {
	var r ExitsReply
	err := c.call(ctx, "Exits", ExitsArgs{After: after, Timeout: timeout}, &r)
	return r.Exits, err
}

// List lists the IDs of the shim's containers.
func (c *Client) List(ctx context.Context) ([]string, error) {
	var r ListReply
	err := c.call(ctx, "List", Empty{}, &r)
	return r.IDs, err
}

// ReopenLog reopens a running container's log file.
func (c *Client) ReopenLog(ctx context.Context, id string) error {
	return c.call(ctx, "ReopenLog", IDArgs{ID: id}, &Empty{})
}

// Exec runs a process in a running container and returns its output (the
// runtime server answers it: Pool.Exec).
func (c *Client) Exec(ctx context.Context, args ExecArgs) (ExecReply, error) {
	var r ExecReply
	err := c.call(ctx, "Exec", args, &r)
	return r, err
}

// ExecStart starts an interactive process in a running container.
func (c *Client) ExecStart(ctx context.Context, args ExecStartArgs) error {
	return c.call(ctx, "ExecStart", args, &Empty{})
}

// ExecWait waits at most timeout for an exec session's process to exit; an
// exited session is forgotten once reported.
func (c *Client) ExecWait(ctx context.Context, execID string, timeout time.Duration) (ExecWaitReply, error) {
	var r ExecWaitReply
	err := c.call(ctx, "ExecWait", ExecWaitArgs{ExecID: execID, Timeout: timeout}, &r)
	return r, err
}

// ExecKill kills an exec session's process.
func (c *Client) ExecKill(ctx context.Context, execID string) error {
	return c.call(ctx, "ExecKill", ExecIDArgs{ExecID: execID}, &Empty{})
}

// Resize sets the terminal size of an exec session, or (execID "") of
// container id.
func (c *Client) Resize(ctx context.Context, id, execID string, width, height uint16) error {
	return c.call(ctx, "Resize", ResizeArgs{ID: id, ExecID: execID, Width: width, Height: height}, &Empty{})
}

// Attach attaches a session's FIFOs to a running container's stdio.
func (c *Client) Attach(ctx context.Context, args AttachArgs) error {
	return c.call(ctx, "Attach", args, &Empty{})
}

// Delete removes a container (killing it if needed).
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.call(ctx, "Delete", IDArgs{ID: id}, &Empty{})
}

// Shutdown asks the shim to exit; it refuses while containers remain. The
// shim may exit before its answer is out: a connection lost on the way is
// the shim gone, as asked.
func (c *Client) Shutdown(ctx context.Context) error {
	err := c.call(ctx, "Shutdown", Empty{}, &Empty{})
	if errors.Is(err, errLost) {
		return nil
	}
	return err
}

// Binaries are the shim's binary and the runtime's, which the shim runs for
// each operation on a container (helper.go).
type Binaries struct{ Shim, Runtime string }

// StartShim starts a detached shim (own session, stdio to logPath) serving
// on socket with libcontainer state under root, and waits until it answers.
// It returns the shim's pid; the shim is not berthd's child for long: berthd
// does not wait for it, so it survives berthd.
func StartShim(ctx context.Context, bins Binaries, socket, root, logPath string) (int, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer ready.Close()
	cmd := exec.Command(bins.Shim, "serve", "--socket", socket, "--root", root, "--runtime", bins.Runtime, "--ready-fd", "3")
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = logf, logf, []*os.File{readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return 0, fmt.Errorf("start shim: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reap it if it dies while berthd lives
	if err := awaitReady(ctx, ready, cmd, "shim", logPath); err != nil {
		return 0, err
	}
	return cmd.Process.Pid, nil
}

// Pause starts (once) the pod's pause process and returns its pid.
func (c *Client) Pause(ctx context.Context, args PauseArgs) (int, error) {
	var r PauseReply
	err := c.call(ctx, "Pause", args, &r)
	return r.PID, err
}
