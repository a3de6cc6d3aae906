package cri

import (
	"context"
	"path/filepath"

	"github.com/containerd/log"

	"github.com/berth-cri/berth/sandbox/container"
)

// Recover reconciles containers with what survived a restart or a crash,
// before the server answers: the FIFOs of the exec and attach sessions the
// last berthd served are removed (sessions end with it; the containers go
// on); containers of pods that are gone are removed;
// what a CreateContainer cut short left (a container in a shim, a rootfs
// mount, a snapshot, all without a record) is undone; shims of pods that are
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
func (s *Server) Recover(ctx context.Context) {
	for _, p := range s.pods.List() {
		container.ReserveSELinuxLabel(p.Spec.SELinuxProcessLabel) // no other pod gets its MCS level
	}
	known := setOf(s.containers.Unreadable())
	unreadablePods := setOf(s.pods.Unreadable())
	for _, c := range s.containers.List(nil) {
		if unreadablePods[c.PodID] {
			s.containers.Hold(c.ID)
			known[c.ID] = true
			continue
		}
		if _, err := s.pods.Get(c.PodID); err != nil {
			log.G(ctx).WithField("container", c.ID).Info("removing a container of a pod that is gone")
			if err := s.removeContainer(ctx, c); err != nil {
				log.G(ctx).WithError(err).Warn("remove container")
			}
			continue
		}
		known[c.ID] = true
	}
	s.recoverShims(ctx, known, unreadablePods)
	if err := container.RemoveSessionDirs(filepath.Join(s.stateDir, "io")); err != nil {
		log.G(ctx).WithError(err).Warn("remove the FIFOs of earlier sessions")
	}
	s.removeUnrecorded(ctx, known)
	pods := map[string]bool{}
	for _, c := range s.containers.List(func(c *container.Container) bool { return c.State != container.Exited }) {
		pods[c.PodID] = true
	}
	for pod := range pods {
		s.watchShim(pod)
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
func (s *Server) recoverShims(ctx context.Context, known, unreadablePods map[string]bool) {
	for _, pod := range s.shims.Pods() {
		if unreadablePods[pod] {
			log.G(ctx).WithField("pod", pod).Warn("keeping the shim of a pod whose record is unreadable")
			continue
		}
		s.deleteUnrecorded(ctx, pod, known)
		if _, err := s.pods.Get(pod); err != nil {
			if err := s.shims.Stop(ctx, pod); err != nil {
				log.G(ctx).WithError(err).WithField("pod", pod).Warn("stop the shim of a pod that is gone")
			}
		}
	}
}

// deleteUnrecorded deletes from the pod's shim (if it runs) the containers
// that are not known: what a CreateContainer cut short by a crash left. The
// shim lists its containers only once the creates in flight are done.
func (s *Server) deleteUnrecorded(ctx context.Context, pod string, known map[string]bool) {
	shim, err := s.shims.Lookup(ctx, pod)
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

// removeUnrecorded unmounts and removes container dirs (their rootfs and
// image mounts) and snapshots (rootfs and image mounts') that belong to no
// container record.
func (s *Server) removeUnrecorded(ctx context.Context, known map[string]bool) {
	for _, id := range container.DirNames(s.stateDir + "/containers") {
		if !known[id] {
			log.G(ctx).WithField("container", id).Info("removing an unrecorded container rootfs")
			s.unmountRootfs(ctx, id)
		}
	}
	keys, err := s.snapshots.SnapshotKeys()
	if err != nil {
		log.G(ctx).WithError(err).Warn("list snapshots")
		return
	}
	for _, key := range keys {
		if !known[snapshotOwner(key)] {
			log.G(ctx).WithField("snapshot", key).Info("removing an unrecorded snapshot")
			_ = s.snapshots.RemoveSnapshot(ctx, key)
		}
	}
}
