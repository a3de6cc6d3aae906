package cri

import (
	"context"
	"path/filepath"

	"github.com/containerd/log"

	"github.com/berth-cri/berth/sandbox/container"
)

// Recover reconciles what survived a restart or a crash, before the server
// answers: every pod keeps its SELinux MCS level; the FIFOs of the exec and
// attach sessions the last berthd served are removed (sessions end with it;
// the containers go on); the container domain reconciles the containers
// with the pods that are left (container.Service.Recover: containers of
// gone pods removed, what a cut-short create left undone, unreadable records
// kept whole, exit watchers started).
func (s *Server) Recover(ctx context.Context) {
	for _, p := range s.pods.List() {
		container.ReserveSELinuxLabel(p.Spec.SELinuxProcessLabel) // no other pod gets its MCS level
	}
	if err := container.RemoveSessionDirs(filepath.Join(s.stateDir, "io")); err != nil {
		log.G(ctx).WithError(err).Warn("remove the FIFOs of earlier sessions")
	}
	s.containers.Recover(ctx, container.RecoverInput{Pod: s.containerPod, UnreadablePods: s.pods.Unreadable()})
}
