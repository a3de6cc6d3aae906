package cri

import (
	"context"
	"fmt"
	"maps"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/cri/nri"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
)

// The NRI hooks as the handlers call them, in the order cri/nri/doc.go
// gives. Hooks whose error comes after the fact are logged here.

// UseNRI makes the server relay its events to h (cmd/berthd builds h with
// NRIDomain). Call it before serving; without it the hooks do nothing.
func (s *Server) UseNRI(h *nri.Host) { s.nri = h }

func logNRI(ctx context.Context, err error) {
	if err != nil {
		log.G(ctx).WithError(err).Warn("NRI plugin")
	}
}

// nriRefused is a hook's error that fails an RPC: a plugin (or a validator)
// refused, which the kubelet gets as FailedPrecondition with the plugin's
// words (not the status the plugin's transport carried).
func nriRefused(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s (refused by an NRI plugin): %w", err, errdefs.ErrFailedPrecondition)
}

// nriCtr is the pod and container of a container event.
func (s *Server) nriCtr(c *container.Container) (*api.PodSandbox, *api.Container) {
	ctr := s.nriContainer(c)
	if p, err := s.pods.Get(c.PodID); err == nil {
		return nriPod(p), ctr
	}
	return &api.PodSandbox{Id: c.PodID}, ctr
}

// nriRunPod sends RunPodSandbox and records the pod READY under Block; a
// refusal, or a record that fails after it, sends RemovePodSandbox.
func (s *Server) nriRunPod(ctx context.Context, p *sandbox.Pod, markReady func() error) error {
	unblock := s.nri.Block()
	defer unblock()
	if err := s.nri.RunPodSandbox(ctx, nriPod(p)); err != nil {
		s.nriUndoPod(ctx, p)
		return nriRefused(err)
	}
	if err := markReady(); err != nil {
		s.nriUndoPod(ctx, p)
		return err
	}
	return nil
}

func (s *Server) nriUndoPod(ctx context.Context, p *sandbox.Pod) {
	undo, cancel := cleanupContext(ctx)
	defer cancel()
	logNRI(ctx, s.nri.RemovePodSandbox(undo, nriPod(p)))
}

// nriStopPod tells plugins that the pod's containers and then the pod
// have stopped.
func (s *Server) nriStopPod(ctx context.Context, p *sandbox.Pod) {
	if s.containers != nil {
		for _, c := range s.containers.List(func(c *container.Container) bool { return c.PodID == p.ID }) {
			pod, ctr := s.nriCtr(c)
			logNRI(ctx, s.nri.StopContainer(ctx, pod, ctr))
		}
	}
	logNRI(ctx, s.nri.StopPodSandbox(ctx, nriPod(p)))
}

// nriCreate runs CreateContainer's NRI part inside the container domain's
// Build callback: plugins are asked about the built spec, and their
// adjustment applied to it. It returns the hook for the end of the creation.
type nriCreate struct {
	s       *Server
	pod     *api.PodSandbox
	rec     container.Container
	unblock func()
	asked   bool
	spec    *specs.Spec
}

func (s *Server) nriCreateStart(p *sandbox.Pod, rec container.Container) *nriCreate {
	return &nriCreate{s: s, pod: nriPod(p), rec: rec, unblock: s.nri.Block()}
}

// adjust asks plugins about spec and applies their adjustment.
func (n *nriCreate) adjust(ctx context.Context, spec *specs.Spec) error {
	rec := n.rec
	rec.State = container.Created
	ctr := &api.Container{Id: rec.ID, PodSandboxId: rec.PodID, Name: rec.Name, State: api.ContainerState_CONTAINER_UNKNOWN,
		Labels: maps.Clone(rec.Labels), Annotations: maps.Clone(rec.Annotations), Image: &api.Image{Name: rec.Image}}
	nri.ContainerSpec(ctr, spec)
	ctr.Annotations = mergeAnnotations(ctr.Annotations, spec.Annotations)
	n.asked = true
	adj, _, err := n.s.nri.CreateContainer(ctx, n.pod, ctr)
	if err != nil {
		return nriRefused(err)
	}
	if err := nri.ApplyAdjustment(spec, adj); err != nil {
		return err
	}
	n.spec = spec
	return nil
}

// done ends the creation: on success the spec is kept and PostCreate sent;
// on failure plugins asked about it get RemoveContainer.
func (n *nriCreate) done(ctx context.Context, c *container.Container, err error) {
	if err == nil && n.spec != nil {
		n.s.nriSpecs.put(c.ID, n.spec)
	}
	n.unblock()
	if err == nil {
		pod, ctr := n.s.nriCtr(c)
		logNRI(ctx, n.s.nri.PostCreateContainer(ctx, pod, ctr))
		return
	}
	if n.asked {
		undo, cancel := cleanupContext(ctx)
		defer cancel()
		ctr := &api.Container{Id: n.rec.ID, PodSandboxId: n.rec.PodID, Name: n.rec.Name, State: api.ContainerState_CONTAINER_STOPPED,
			Labels: maps.Clone(n.rec.Labels), Annotations: maps.Clone(n.rec.Annotations)}
		if n.spec != nil {
			nri.ContainerSpec(ctr, n.spec)
		}
		logNRI(ctx, n.s.nri.RemoveContainer(undo, n.pod, ctr))
	}
}

// nriStart sends StartContainer (a refusal fails the start and sends
// StopContainer), runs start, then PostStartContainer; a failed start sends
// StopContainer.
func (s *Server) nriStart(ctx context.Context, c *container.Container, start func() error) error {
	pod, ctr := s.nriCtr(c)
	if err := s.nri.StartContainer(ctx, pod, ctr); err != nil {
		s.nriStopped(ctx, c.ID, c)
		return nriRefused(err)
	}
	if err := start(); err != nil {
		s.nriStopped(ctx, c.ID, c)
		return err
	}
	if now, err := s.containers.Get(c.ID); err == nil {
		pod, ctr = s.nriCtr(now)
	}
	logNRI(ctx, s.nri.PostStartContainer(ctx, pod, ctr))
	return nil
}

// nriStopped sends StopContainer (once per container) with the container's
// current state; last is used when it is gone.
func (s *Server) nriStopped(ctx context.Context, id string, last *container.Container) {
	c, err := s.containers.Get(id)
	if err != nil {
		c = last
	}
	pod, ctr := s.nriCtr(c)
	logNRI(ctx, s.nri.StopContainer(ctx, pod, ctr))
}

// nriRemoved sends RemoveContainer for a container that is gone.
func (s *Server) nriRemoved(ctx context.Context, c *container.Container) {
	pod, ctr := s.nriCtr(c)
	ctr.State = api.ContainerState_CONTAINER_STOPPED
	s.nriSpecs.forget(c.ID)
	logNRI(ctx, s.nri.RemoveContainer(ctx, pod, ctr))
}

// nriUpdate asks plugins about new resources for a container, applies what
// they return through apply, then sends PostUpdateContainer.
func (s *Server) nriUpdate(ctx context.Context, c *container.Container, asked *specs.LinuxResources,
	apply func(*specs.LinuxResources) error) error {
	pod, ctr := s.nriCtr(c)
	res, err := s.nri.UpdateContainer(ctx, pod, ctr, api.FromOCILinuxResources(asked, nil))
	if err != nil {
		return nriRefused(err)
	}
	final := asked
	if res != nil && s.nri.Enabled() {
		final = res.ToOCI()
	}
	if err := apply(final); err != nil {
		return err
	}
	s.nriSpecs.load(c)
	s.nriSpecs.update(c.ID, func(sp *specs.Spec) {
		if sp.Linux != nil {
			sp.Linux.Resources = final
		}
	})
	if now, err := s.containers.Get(c.ID); err == nil {
		pod, ctr = s.nriCtr(now)
	}
	logNRI(ctx, s.nri.PostUpdateContainer(ctx, pod, ctr))
	return nil
}

// nriUpdatePod sends UpdatePodSandbox (a refusal fails), applies, then
// PostUpdatePodSandbox.
func (s *Server) nriUpdatePod(ctx context.Context, p *sandbox.Pod, overhead, resources *specs.LinuxResources, apply func() error) error {
	pod := nriPod(p)
	if err := s.nri.UpdatePodSandbox(ctx, pod, api.FromOCILinuxResources(overhead, nil), api.FromOCILinuxResources(resources, nil)); err != nil {
		return nriRefused(err)
	}
	if err := apply(); err != nil {
		return err
	}
	logNRI(ctx, s.nri.PostUpdatePodSandbox(ctx, pod))
	return nil
}

// nriExited is the exit watcher's part: a container recorded EXITED gets
// its StopContainer event (once, whoever sends it first).
func (s *Server) nriExited(ch container.Change) {
	if ch.Deleted || ch.Container.State != container.Exited || !s.nri.Enabled() {
		return
	}
	c := ch.Container
	pod, ctr := s.nriCtr(&c)
	logNRI(s.bg, s.nri.StopContainer(s.bg, pod, ctr))
}
