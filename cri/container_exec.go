package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
)

// maxExecOutput caps each output stream of ExecSync, so that a chatty probe
// cannot exhaust berthd's memory; the rest of the output is dropped.
const maxExecOutput = 16 << 20

// ExecSync runs a command in a running container, in its namespaces and
// cgroup, as its user, and returns its output and exit code. When the timeout
// passes first, the command is killed and the call fails with
// DeadlineExceeded, which the kubelet reads as a probe timeout.
func (s *Server) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, _, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(req.GetTimeout()) * time.Second
	res, err := s.shims.Exec(ctx, c.PodID, c.ID, req.GetCmd(), timeout, maxExecOutput)
	if err != nil {
		return nil, err
	}
	if res.TimedOut {
		log.G(ctx).WithFields(log.Fields{"container": c.ID, "cmd": req.GetCmd()}).Info("exec timed out")
		return nil, fmt.Errorf("command %q timed out after %v: %w", req.GetCmd(), timeout, context.DeadlineExceeded)
	}
	return &runtime.ExecSyncResponse{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}

// ReopenContainerLog has the shim reopen a running container's log file, after
// the kubelet rotated it.
func (s *Server) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	c, shim, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if err := shim.ReopenLog(ctx, c.ID); err != nil {
		return nil, err
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}

// runningContainer finds a running container and its pod's shim.
func (s *Server) runningContainer(ctx context.Context, id string) (*container.Container, *runner.Client, error) {
	c, err := s.containers.Find(id)
	if err != nil {
		return nil, nil, err
	}
	if c.State != container.Running {
		return nil, nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	shim, err := s.shims.Lookup(ctx, c.PodID)
	if err != nil {
		return nil, nil, err
	}
	return c, shim, nil
}
