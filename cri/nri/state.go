package nri

import "github.com/containerd/nri/pkg/api"

// phase is where an object stands in the events plugins have seen.
type phase uint8

const (
	unseen  phase = iota // no event yet in this process (or removed)
	created              // container: CreateContainer sent
	running              // pod: RunPodSandbox sent; container: StartContainer sent
	stopped              // StopPodSandbox / StopContainer sent
)

// states remembers each object's phase, so that every Stop event goes out
// once, before the Remove event, whichever of the stop RPC, the exit watcher
// or the remove RPC comes first. Guarded by Host.mu.
type states struct {
	pods, containers map[string]phase
}

func newStates() states {
	return states{pods: map[string]phase{}, containers: map[string]phase{}}
}

// seed records what a synchronisation reported: after a restart it is how
// the host knows which containers have stopped already.
func (s *states) seed(ctrs []*api.Container) {
	for _, c := range ctrs {
		s.containers[c.GetId()] = phaseOf(c.GetState())
	}
}

func phaseOf(st api.ContainerState) phase {
	switch st {
	case api.ContainerState_CONTAINER_CREATED:
		return created
	case api.ContainerState_CONTAINER_RUNNING, api.ContainerState_CONTAINER_PAUSED:
		return running
	case api.ContainerState_CONTAINER_STOPPED:
		return stopped
	}
	return unseen
}

// containerNeedsStop: a container not known to have stopped gets a
// StopContainer event; one never seen is judged by the state its caller
// reports (a duplicate Stop is better than a missing one).
func (s *states) containerNeedsStop(c *api.Container) bool {
	switch s.containers[c.GetId()] {
	case created, running:
		return true
	case stopped:
		return false
	}
	return c.GetState() != api.ContainerState_CONTAINER_STOPPED
}

// podNeedsStop: a pod that was never stopped in this process gets a
// StopPodSandbox event (a pod's record says nothing of NRI, so an unseen
// pod is one the caller found running).
func (s *states) podNeedsStop(id string) bool { return s.pods[id] != stopped }

// podRunning: RemovePodSandbox sends a Stop event first only
// for a pod known to run; an unseen pod was stopped before a restart.
func (s *states) podRunning(id string) bool { return s.pods[id] == running }
