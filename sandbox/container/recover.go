package container

import (
	"context"

	"github.com/containerd/log"
)

// RecoverInput is what recovery knows of the pods (sandbox/, recovered
// first).
type RecoverInput struct {
	// Pod returns a pod that exists; false for one that is gone.
	Pod func(id string) (Pod, bool)
	// UnreadablePods are the pods whose records could not be read.
	UnreadablePods []string
}

// Recover reconciles containers with what survived a restart or a crash,
// before berthd serves: containers of pods that are gone are removed; what a
// Create cut short left (a container in a shim, a rootfs or image mount, a
// snapshot, a dir, all without a record) is undone; shims of pods that are
// gone are shut down; every pod whose containers may still run gets its exit
// watcher, which reports the exits that happened while berthd was down, or
// settles the containers of a shim that died.
//
// A record that could not be read (corrupt, or of a newer Berth) is no
// absence of one: what it describes is kept whole. An unreadable container
// keeps its process in its shim, its rootfs mount and its snapshot (and so
// the image's layers); an unreadable pod keeps its shim and the containers
// recorded in it, which are held (not listed either: the kubelet would remove
// a container whose pod it cannot see). They are not listed; their files are
// left for inspection.
func (s *Service) Recover(ctx context.Context, in RecoverInput) {
	known := setOf(s.store.Unreadable())
	unreadablePods := setOf(in.UnreadablePods)
	for _, c := range s.store.List(nil) {
		if unreadablePods[c.PodID] {
			s.store.Hold(c.ID)
			known[c.ID] = true
			continue
		}
		if _, ok := in.Pod(c.PodID); !ok {
			log.G(ctx).WithField("container", c.ID).Info("removing a container of a pod that is gone")
			if err := s.Remove(ctx, c.ID, ""); err != nil {
				log.G(ctx).WithError(err).Warn("remove container")
			}
			continue
		}
		known[c.ID] = true
	}
	s.recoverShims(ctx, in, known, unreadablePods)
	s.removeUnrecorded(ctx, known)
	watch := map[string]bool{}
	for _, c := range s.store.List(func(c *Container) bool { return c.State != Exited }) {
		watch[c.PodID] = true
	}
	for id := range watch {
		if p, ok := in.Pod(id); ok {
			s.Watch(p)
		}
	}
}

func setOf(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// recoverShims deletes from live shims the containers without a record, and
// stops the shims of pods that are gone. The shim of a pod whose record is
// unreadable is left alone: its containers may have no readable record
// either.
func (s *Service) recoverShims(ctx context.Context, in RecoverInput, known, unreadablePods map[string]bool) {
	for _, pod := range s.runner.Pods() {
		if unreadablePods[pod] {
			log.G(ctx).WithField("pod", pod).Warn("keeping the shim of a pod whose record is unreadable")
			continue
		}
		s.deleteUnrecorded(ctx, pod, known)
		if _, ok := in.Pod(pod); !ok {
			if err := s.runner.Stop(ctx, pod); err != nil {
				log.G(ctx).WithError(err).WithField("pod", pod).Warn("stop the shim of a pod that is gone")
			}
		}
	}
}

// removeUnrecorded unmounts and removes container dirs (their rootfs and
// image mounts) and snapshots (rootfs and image mounts') that belong to no
// container record.
func (s *Service) removeUnrecorded(ctx context.Context, known map[string]bool) {
	for _, id := range s.os.DirNames(s.containersDir()) {
		if !known[id] {
			log.G(ctx).WithField("container", id).Info("removing an unrecorded container rootfs")
			s.removeFiles(ctx, id)
		}
	}
	keys, err := s.snaps.Keys()
	if err != nil {
		log.G(ctx).WithError(err).Warn("list snapshots")
		return
	}
	for _, key := range keys {
		if !known[snapshotOwner(key)] {
			log.G(ctx).WithField("snapshot", key).Info("removing an unrecorded snapshot")
			_ = s.snaps.Remove(ctx, key)
		}
	}
}
