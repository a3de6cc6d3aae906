package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
)

// ContainerStore keeps container records (container.Store).
type ContainerStore interface {
	Add(c container.Container) error
	Get(id string) (*container.Container, error)
	Find(idOrPrefix string) (*container.Container, error)
	List(keep func(*container.Container) bool) []*container.Container
	Update(id string, fn func(*container.Container) error) (*container.Container, error)
	Delete(id string) error
	// Claim waits until op may work on the container (a stop beside other
	// stops, a start or a remove alone) and returns its record then, with
	// the release.
	Claim(ctx context.Context, id string, op claim.Op) (*container.Container, func(), error)
	// SetNotify makes fn hear of every recorded change of state.
	SetNotify(fn func(container.Change))
	// Unreadable lists the containers whose records could not be read at
	// start-up: recovery keeps everything of theirs.
	Unreadable() []string
	// Hold takes a container out of the lists, kept whole as an
	// unreadable one is (the containers of a pod whose record is unreadable).
	Hold(id string)
}

// Shims gives each pod its berth-shim (runner.Pool).
type Shims interface {
	Get(ctx context.Context, pod string) (*runner.Client, error)
	Lookup(ctx context.Context, pod string) (*runner.Client, error)
	Stop(ctx context.Context, pod string) error
	// RecordedExit is a container's exit as its shim recorded it; it
	// outlives the shim.
	RecordedExit(pod, id string) (runner.Exit, error)
	// Pods lists the pods that have shim files.
	Pods() []string
	// Exec runs a process in a running container of pod (ExecSync).
	Exec(ctx context.Context, pod, id string, args []string, timeout time.Duration, limit int) (runner.ExecReply, error)
}

// Snapshots prepares containers' root filesystems (images.Service).
type Snapshots interface {
	PrepareSnapshot(ctx context.Context, key, image string, readOnly bool) (*images.Rootfs, error)
	RemoveSnapshot(ctx context.Context, key string) error
	SnapshotKeys() ([]string, error)
	// SnapshotUsage is the disk use of a writable layer, measured at
	// most every few seconds; SnapshotsDir is where they are.
	SnapshotUsage(key string) (bytes, inodes int64, err error)
	SnapshotsDir() string
}

func containerName(md *runtime.ContainerMetadata, pod *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%s_%d", md.GetName(), pod.GetName(), pod.GetNamespace(), pod.GetUid(), md.GetAttempt())
}

// containerDir holds a container's rootfs mount point and image volumes.
func (s *Server) containerDir(id string) string { return s.stateDir + "/containers/" + id }

func criState(st container.State) runtime.ContainerState {
	switch st {
	case container.Created:
		return runtime.ContainerState_CONTAINER_CREATED
	case container.Running:
		return runtime.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

// refresh asks the shim whether a started container exited meanwhile and
// records how. A lost shim makes the container UNKNOWN.
func (s *Server) refresh(ctx context.Context, c *container.Container) *container.Container {
	if c.State != container.Running {
		return c
	}
	shim, err := s.shims.Lookup(ctx, c.PodID)
	if err != nil {
		return s.markUnknown(ctx, c, "the pod's shim is gone")
	}
	w, err := shim.Wait(ctx, c.ID, 0)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return s.markUnknown(ctx, c, "the shim does not know the container")
		}
		return c
	}
	if !w.Exited {
		return c
	}
	updated, err := s.updateContainer(c.ID, func(c *container.Container) error {
		c.State, c.ExitCode, c.FinishedAt = container.Exited, int32(w.Exit.Code), w.Exit.At
		c.Reason = "Completed"
		if w.Exit.Code != 0 {
			c.Reason = "Error"
		}
		return nil
	})
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", c.ID).Warn("record the exit")
		return c
	}
	return updated
}

func (s *Server) markUnknown(ctx context.Context, c *container.Container, why string) *container.Container {
	updated, err := s.updateContainer(c.ID, func(c *container.Container) error {
		c.State, c.Message = container.Unknown, why
		return nil
	})
	if err != nil {
		return c
	}
	return updated
}

// waitExit waits up to timeout for a container to exit and records it.
func (s *Server) waitExit(ctx context.Context, shim *runner.Client, c *container.Container, timeout time.Duration) (bool, error) {
	w, err := shim.Wait(ctx, c.ID, timeout)
	if err != nil || !w.Exited {
		return false, err
	}
	s.refresh(ctx, c)
	return true, nil
}

// withContainer claims a container for op, runs fn on its record as it is
// under the claim, and releases it. A container removed meanwhile is no
// error: stop and remove are idempotent.
func (s *Server) withContainer(ctx context.Context, id string, op claim.Op, fn func(*container.Container) error) error {
	c, release, err := s.containers.Claim(ctx, id, op)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer release()
	return fn(c)
}

func isTerminal(st container.State) bool {
	return st == container.Exited || st == container.Unknown
}

func trimSlash(s string) string { return "/" + strings.Trim(s, "/") }
