package container

import (
	"context"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/berth-cri/berth/sandbox/claim"
)

// Remove stops a container if it runs, deletes it from its shim, unmounts
// and removes its rootfs and image mounts, their snapshots and its dir, its
// cgroup (under cgroupParent, the pod's; "" when the pod is gone: the cgroup
// is left), then its record. Removing a missing container succeeds. The
// container is claimed: a start or stop in flight ends first, and what waits
// for it meanwhile finds it gone.
func (s *Service) Remove(ctx context.Context, id, cgroupParent string) error {
	return s.claimed(ctx, id, claim.Removing, func(c *Container) error { return s.remove(ctx, c, cgroupParent) })
}

func (s *Service) remove(ctx context.Context, c *Container, cgroupParent string) error {
	if err := s.stop(ctx, c, 0); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	if shim, err := s.runner.Lookup(ctx, c.PodID); err == nil {
		if err := shim.Delete(ctx, c.ID); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	s.removeFiles(ctx, c.ID)
	if cgroupParent != "" {
		// The shim destroys the cgroup; a shim that died could not.
		if err := s.os.RemoveCgroup(CgroupPath(cgroupParent, c.ID), cgroupParent); err != nil {
			log.G(ctx).WithError(err).Warn("remove the container's cgroup")
		}
	}
	if err := s.store.Delete(c.ID); err != nil {
		return err
	}
	log.G(ctx).WithField("container", c.ID).Info("removed container")
	return nil
}

// RemovePod removes every container of a pod (see Remove), deletes from
// its shim what no record names any more, and stops the shim.
func (s *Service) RemovePod(ctx context.Context, pod, cgroupParent string) error {
	for _, c := range s.store.List(func(c *Container) bool { return c.PodID == pod }) {
		if err := s.Remove(ctx, c.ID, cgroupParent); err != nil {
			return err
		}
	}
	s.deleteUnrecorded(ctx, pod, nil) // none of the pod's is recorded any more
	return s.runner.Stop(ctx, pod)
}

// deleteUnrecorded deletes from the pod's shim (if it runs) the containers
// that are not known: what a CreateContainer cut short by a crash left. The
// shim lists its containers only once the creates in flight are done.
func (s *Service) deleteUnrecorded(ctx context.Context, pod string, known map[string]bool) {
	shim, err := s.runner.Lookup(ctx, pod)
	if err != nil {
		return
	}
	ids, _ := shim.List(ctx)
	for _, id := range ids {
		if !known[id] {
			log.G(ctx).WithField("container", id).Info("deleting an unrecorded container from its shim")
			if err := shim.Delete(ctx, id); err != nil {
				log.G(ctx).WithError(err).WithField("container", id).Warn("delete an unrecorded container")
			}
		}
	}
}
