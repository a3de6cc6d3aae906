package container

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/claim"
)

// Start runs a created container's command. It claims the container: a
// start or remove in flight is waited for, a stop or remove of it waits.
// (The caller holds its pod: a pod being stopped refuses the start.)
func (s *Service) Start(ctx context.Context, id string) error {
	c, release, err := s.store.Claim(ctx, id, claim.Starting)
	if err != nil {
		return err
	}
	defer release()
	if c.State != Created {
		return fmt.Errorf("container %s is %s, not CREATED: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	shim, err := s.runner.Lookup(ctx, c.PodID)
	if err != nil {
		return err
	}
	started := time.Now().UTC()
	if err := shim.Start(ctx, c.ID); err != nil {
		return err
	}
	// The exit watcher may have recorded the exit of a quick command already.
	if _, err := s.store.Update(c.ID, func(c *Container) error {
		c.StartedAt = started
		if c.State == Created {
			c.State = Running
		}
		return nil
	}); err != nil {
		return err
	}
	log.G(ctx).WithField("container", c.ID).Info("started container")
	return nil
}

// Stop sends the container's stop signal (SIGTERM unless it names another),
// waits up to timeout, then SIGKILL. Stopping a missing or exited container
// succeeds. Stops go together; a start or remove in flight is waited for.
func (s *Service) Stop(ctx context.Context, id string, timeout time.Duration) error {
	return s.claimed(ctx, id, claim.Stopping, func(c *Container) error { return s.stop(ctx, c, timeout) })
}

// StopPod kills the containers of a pod (the kubelet stopped them gracefully
// before; what is left goes now).
func (s *Service) StopPod(ctx context.Context, pod string) error {
	for _, c := range s.store.List(func(c *Container) bool { return c.PodID == pod }) {
		if err := s.Stop(ctx, c.ID, 0); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func (s *Service) stop(ctx context.Context, c *Container, timeout time.Duration) error {
	c = s.refresh(ctx, c)
	if c.State == Exited || c.State == Unknown {
		return nil
	}
	shim, err := s.runner.Lookup(ctx, c.PodID)
	if err != nil {
		return err
	}
	if c.State == Created {
		return s.killCreated(ctx, shim, c)
	}
	log.G(ctx).WithFields(log.Fields{"container": c.ID, "timeout": timeout}).Info("stopping container")
	if timeout > 0 {
		sig := syscall.Signal(c.StopSignal)
		if sig == 0 {
			sig = syscall.SIGTERM
		}
		if err := shim.Signal(ctx, c.ID, sig); err != nil {
			return err
		}
		if done, err := s.waitExit(ctx, shim, c, timeout); err != nil || done {
			return err
		}
	}
	if err := shim.Signal(ctx, c.ID, syscall.SIGKILL); err != nil {
		return err
	}
	_, err = s.waitExit(ctx, shim, c, 30*time.Second)
	return err
}

// killCreated stops a container that never started: nothing to wait for,
// its init just goes.
func (s *Service) killCreated(ctx context.Context, shim Shim, c *Container) error {
	if err := shim.Signal(ctx, c.ID, syscall.SIGKILL); err != nil {
		return err
	}
	if _, err := s.waitExit(ctx, shim, c, 10*time.Second); err != nil {
		return err
	}
	_, err := s.store.Update(c.ID, func(c *Container) error {
		if c.State == Created {
			c.State, c.FinishedAt, c.ExitCode, c.Reason = Exited, time.Now().UTC(), 137, "Error"
		}
		return nil
	})
	return err
}

// refresh asks the shim whether a started container exited meanwhile and
// records how. A lost shim makes the container UNKNOWN.
func (s *Service) refresh(ctx context.Context, c *Container) *Container {
	if c.State != Running {
		return c
	}
	shim, err := s.runner.Lookup(ctx, c.PodID)
	if err != nil {
		return s.markUnknown(c, "the pod's shim is gone")
	}
	w, err := shim.Wait(ctx, c.ID, 0)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return s.markUnknown(c, "the shim does not know the container")
		}
		return c
	}
	if !w.Exited {
		return c
	}
	updated, err := s.store.Update(c.ID, func(c *Container) error {
		c.State, c.ExitCode, c.FinishedAt = Exited, int32(w.Exit.Code), w.Exit.At
		c.Reason = exitReason(w.Exit.Code)
		return nil
	})
	if err != nil {
		log.G(ctx).WithError(err).WithField("container", c.ID).Warn("record the exit")
		return c
	}
	return updated
}

// markUnknown records that the container's state cannot be learnt; one the
// exit watcher settled meanwhile (EXITED) keeps that, and the caller gets
// it.
func (s *Service) markUnknown(c *Container, why string) *Container {
	updated, err := s.store.Update(c.ID, func(c *Container) error {
		if c.State == Exited {
			return nil
		}
		c.State, c.Message = Unknown, why
		return nil
	})
	if err != nil {
		return c
	}
	return updated
}

// waitExit waits up to timeout for a container to exit and records it.
func (s *Service) waitExit(ctx context.Context, shim Shim, c *Container, timeout time.Duration) (bool, error) {
	w, err := shim.Wait(ctx, c.ID, timeout)
	if err != nil || !w.Exited {
		return false, err
	}
	s.refresh(ctx, c)
	return true, nil
}

// ResourceUpdate is a change of resources: the cgroup settings for the shim, the
// record's form of them, and the settings to put back if the record cannot
// be written (nil: none recorded before).
type ResourceUpdate struct {
	Linux    *specs.LinuxResources
	Record   *Resources
	Previous *specs.LinuxResources
}

// UpdateResources changes a created or running container's cgroup settings,
// all or nothing, then records them. A crash between the two steps leaves
// the old settings in the record; the kubelet, seeing them in the status,
// asks again.
func (s *Service) UpdateResources(ctx context.Context, id string, u ResourceUpdate) error {
	c, err := s.store.Get(id)
	if err != nil {
		return err
	}
	if c.State != Created && c.State != Running {
		return fmt.Errorf("container %s is %s: %w", c.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	shim, err := s.runner.Lookup(ctx, c.PodID)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	if err := shim.Update(ctx, c.ID, u.Linux); err != nil {
		return err
	}
	if _, err := s.store.Update(c.ID, func(c *Container) error {
		c.Resources = u.Record
		return nil
	}); err != nil {
		if u.Previous != nil {
			undo, cancel := cleanupContext(ctx)
			defer cancel()
			if uerr := shim.Update(undo, c.ID, u.Previous); uerr != nil {
				log.G(ctx).WithError(uerr).WithField("container", c.ID).Warn("set the previous resources back")
			}
		}
		return err
	}
	log.G(ctx).WithField("container", c.ID).Info("updated container resources")
	return nil
}
