package nri

import (
	"context"
	"fmt"

	"github.com/containerd/log"
	"github.com/containerd/nri/pkg/api"
)

// Every hook does nothing (and returns what leaves the object unchanged)
// when NRI is disabled, before Start and after Stop. Each takes the pod and
// container as plugins should see them, with every field cri/ knows (see
// ContainerSpec for the spec's part); the nri library may fill nil maps and
// slices of what it is given. Events go out one at a time, in call order.

// active reports whether hooks relay events now.
func (h *Host) active() bool { return h.nri != nil && h.running.Load() }

// relay sends one event through send, one at a time, if hooks relay events
// now; its error names the event.
func (h *Host) relay(event string, send func() error) error {
	if !h.active() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return eventError(event, send())
}

func eventError(event string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("NRI %s: %w", event, err)
}

// RunPodSandbox tells plugins of a pod that is set up (namespaces, network)
// and about to be recorded READY. An error (a plugin refused) fails the RPC,
// whose undo then calls RemovePodSandbox.
func (h *Host) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return h.relay("RunPodSandbox", func() error {
		h.states.pods[pod.GetId()] = running
		return h.nri.RunPodSandbox(ctx, &api.RunPodSandboxRequest{Pod: pod})
	})
}

// UpdatePodSandbox tells plugins of a pod's new resources (overhead and
// total) before they are applied; an error fails the update.
func (h *Host) UpdatePodSandbox(ctx context.Context, pod *api.PodSandbox, overhead, resources *api.LinuxResources) error {
	return h.relay("UpdatePodSandbox", func() error {
		_, err := h.nri.UpdatePodSandbox(ctx, &api.UpdatePodSandboxRequest{Pod: pod, OverheadLinuxResources: overhead, LinuxResources: resources})
		return err
	})
}

// PostUpdatePodSandbox tells plugins that a pod's resources were updated.
func (h *Host) PostUpdatePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return h.relay("PostUpdatePodSandbox", func() error {
		return h.nri.PostUpdatePodSandbox(ctx, &api.PostUpdatePodSandboxRequest{Pod: pod})
	})
}

// StopPodSandbox tells plugins that a pod has stopped (its containers
// stopped, before its network is torn down). It goes out once per pod.
func (h *Host) StopPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	if !h.active() {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stopPod(ctx, pod)
}

func (h *Host) stopPod(ctx context.Context, pod *api.PodSandbox) error {
	if !h.states.podNeedsStop(pod.GetId()) {
		return nil
	}
	h.states.pods[pod.GetId()] = stopped
	return eventError("StopPodSandbox", h.nri.StopPodSandbox(ctx, &api.StopPodSandboxRequest{Pod: pod}))
}

// RemovePodSandbox tells plugins that a pod is gone; a pod that was never
// stopped gets its StopPodSandbox event first.
func (h *Host) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	return h.relay("RemovePodSandbox", func() error {
		if h.states.podRunning(pod.GetId()) {
			if err := h.stopPod(ctx, pod); err != nil {
				log.G(ctx).WithError(err).Warn("NRI stop before remove")
			}
		}
		delete(h.states.pods, pod.GetId())
		return h.nri.RemovePodSandbox(ctx, &api.RemovePodSandboxRequest{Pod: pod})
	})
}

// CreateContainer asks plugins about a container whose spec is built and
// not yet created: it returns the adjustment to apply to the spec
// (ApplyAdjustment) and the updates plugins asked for other containers, which
// it has applied already through Domain.UpdateContainer (failures logged).
// An error (a plugin or a validator refused) fails the RPC. Whatever the
// outcome, a container that does not end up created must get RemoveContainer.
// The caller holds Block across this call and the record's commit.
func (h *Host) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	if !h.active() {
		return nil, nil, nil
	}
	h.mu.Lock()
	h.states.containers[ctr.GetId()] = created
	resp, err := h.nri.CreateContainer(ctx, &api.CreateContainerRequest{Pod: pod, Container: ctr})
	h.mu.Unlock()
	if err != nil {
		return nil, nil, eventError("CreateContainer", err)
	}
	h.applySolicited(ctx, "CreateContainer", resp.GetUpdate(), resp.GetEvict())
	return resp.GetAdjust(), resp.GetUpdate(), nil
}

// PostCreateContainer tells plugins that a container was created.
func (h *Host) PostCreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return h.relay("PostCreateContainer", func() error {
		return h.nri.PostCreateContainer(ctx, &api.PostCreateContainerRequest{Pod: pod, Container: ctr})
	})
}

// StartContainer tells plugins that a container is about to start; an error
// fails the RPC (which then calls StopContainer).
func (h *Host) StartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return h.relay("StartContainer", func() error {
		h.states.containers[ctr.GetId()] = running
		return h.nri.StartContainer(ctx, &api.StartContainerRequest{Pod: pod, Container: ctr})
	})
}

// PostStartContainer tells plugins that a container runs.
func (h *Host) PostStartContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return h.relay("PostStartContainer", func() error {
		return h.nri.PostStartContainer(ctx, &api.PostStartContainerRequest{Pod: pod, Container: ctr})
	})
}

// UpdateContainer asks plugins about new resources for a container before
// they are applied: it returns the resources to apply (those asked, as the
// plugins changed them), having applied the updates plugins asked for other
// containers through Domain.UpdateContainer. An error fails the RPC.
func (h *Host) UpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container, resources *api.LinuxResources) (*api.LinuxResources, error) {
	if !h.active() {
		return resources, nil
	}
	h.mu.Lock()
	resp, err := h.nri.UpdateContainer(ctx, &api.UpdateContainerRequest{Pod: pod, Container: ctr, LinuxResources: resources})
	h.mu.Unlock()
	if err != nil {
		return nil, eventError("UpdateContainer", err)
	}
	// The library puts the update of the container asked about last (nil
	// when no plugin changed it).
	updates, final := resp.GetUpdate(), resources
	if n := len(updates); n > 0 {
		if r := updates[n-1].GetLinux().GetResources(); r != nil && updates[n-1].GetContainerId() == ctr.GetId() {
			final = r
		}
		updates = updates[:n-1]
	}
	h.applySolicited(ctx, "UpdateContainer", updates, resp.GetEvict())
	return final, nil
}

// PostUpdateContainer tells plugins that a container's resources were
// updated.
func (h *Host) PostUpdateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	return h.relay("PostUpdateContainer", func() error {
		return h.nri.PostUpdateContainer(ctx, &api.PostUpdateContainerRequest{Pod: pod, Container: ctr})
	})
}

// StopContainer tells plugins that a container has stopped, whether the
// StopContainer RPC stopped it or its init exited (the exit watcher calls it
// too): the event goes out once per container. Updates plugins return are
// applied through Domain.UpdateContainer.
func (h *Host) StopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	if !h.active() {
		return nil
	}
	h.mu.Lock()
	updates, err := h.stopContainer(ctx, pod, ctr)
	h.mu.Unlock()
	h.applySolicited(ctx, "StopContainer", updates, nil)
	return err
}

func (h *Host) stopContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	if !h.states.containerNeedsStop(ctr) {
		return nil, nil
	}
	h.states.containers[ctr.GetId()] = stopped
	resp, err := h.nri.StopContainer(ctx, &api.StopContainerRequest{Pod: pod, Container: ctr})
	return resp.GetUpdate(), eventError("StopContainer", err)
}

// RemoveContainer tells plugins that a container is gone (or that a
// creation they were asked about was undone); one not known to have stopped
// gets its StopContainer event first.
func (h *Host) RemoveContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	if !h.active() {
		return nil
	}
	h.mu.Lock()
	updates, err := h.stopContainer(ctx, pod, ctr)
	if err != nil {
		log.G(ctx).WithError(err).Warn("NRI stop before remove")
	}
	delete(h.states.containers, ctr.GetId())
	err = eventError("RemoveContainer", h.nri.RemoveContainer(ctx, &api.RemoveContainerRequest{Pod: pod, Container: ctr}))
	h.mu.Unlock()
	h.applySolicited(ctx, "StopContainer", updates, nil)
	return err
}
