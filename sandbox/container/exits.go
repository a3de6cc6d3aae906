package container

import (
	"context"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Each pod shim has one watcher in berthd: it long-polls the shim for exits
// and writes them into the container records, so that ListContainers and
// ContainerStatus answer from memory. When the shim is gone, its containers
// are reported exited with what the shim recorded, or killed and reported
// exited when it recorded nothing.

// exitPoll is how long one Exits call waits in the shim.
const exitPoll = 5 * time.Minute

// Watch starts the pod's exit watcher unless it runs. It runs until the pod's
// shim is gone (and its containers settled) or the service closes.
func (s *Service) Watch(pod Pod) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watching[pod.ID] {
		return
	}
	s.watching[pod.ID] = true
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		s.followExits(pod)
	}()
}

func (s *Service) followExits(pod Pod) {
	ctx := log.WithLogger(s.bg, log.G(s.bg).WithField("pod", pod.ID))
	defer func() {
		s.watchMu.Lock()
		delete(s.watching, pod.ID)
		s.watchMu.Unlock()
	}()
	var seq uint64
	var last Shim
	for ctx.Err() == nil {
		shim, err := s.runner.Lookup(ctx, pod.ID)
		if err != nil {
			s.shimGone(ctx, pod)
			return
		}
		if shim != last { // a new shim numbers its exits anew
			seq, last = 0, shim
		}
		events, err := shim.Exits(ctx, seq, exitPoll)
		if err != nil {
			if !shim.Dead() && ctx.Err() == nil {
				log.G(ctx).WithError(err).Warn("poll the shim for exits")
				sleep(ctx, time.Second)
			}
			continue
		}
		for _, e := range events {
			s.recordExit(ctx, e.ID, e.Exit, "")
			seq = max(seq, e.Seq)
		}
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// recordExit marks a created or running container exited, as the shim saw
// it, with message (if any) in the same change: a status read in between
// would show the exit without its explanation. A container already exited
// keeps its record.
func (s *Service) recordExit(ctx context.Context, id string, e runner.Exit, message string) {
	_, err := s.store.Update(id, func(c *Container) error {
		if c.State == Exited {
			return nil
		}
		c.State, c.ExitCode, c.FinishedAt, c.Reason = Exited, int32(e.Code), e.At, e.Reason
		if message != "" {
			c.Message = message
		}
		if c.Reason == "" {
			c.Reason = exitReason(e.Code)
		}
		return nil
	})
	if err != nil && !errdefs.IsNotFound(err) {
		log.G(ctx).WithError(err).WithField("container", id).Warn("record the exit")
		return
	}
	log.G(ctx).WithFields(log.Fields{"container": id, "code": e.Code, "reason": e.Reason}).Info("container exited")
}

func exitReason(code int) string {
	if code == 0 {
		return "Completed"
	}
	return "Error"
}

// shimGone settles the containers of a pod whose shim no longer runs: each
// one's recorded exit if the shim wrote it, else its processes are killed
// (nothing holds their stdio any more) and it is reported killed.
func (s *Service) shimGone(ctx context.Context, pod Pod) {
	for _, c := range s.store.List(func(c *Container) bool { return c.PodID == pod.ID }) {
		if c.State == Exited {
			continue
		}
		if e, err := s.runner.RecordedExit(pod.ID, c.ID); err == nil {
			s.recordExit(ctx, c.ID, e, "")
			continue
		}
		log.G(ctx).WithField("container", c.ID).Warn("the pod's shim is gone: killing what is left of the container")
		if pod.CgroupParent != "" {
			if err := s.os.KillCgroup(CgroupPath(pod.CgroupParent, c.ID), 10*time.Second); err != nil {
				log.G(ctx).WithError(err).Warn("kill the container's cgroup")
			}
		}
		s.recordExit(ctx, c.ID, runner.Exit{Code: 137, Reason: "Error", At: time.Now().UTC()},
			"berth-shim of the pod exited; the container was killed")
	}
}
