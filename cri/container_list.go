package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
)

// ListContainers lists containers, filtered by id prefix, state, pod and
// labels, from memory (the exit watchers keep the records current).
func (s *Server) ListContainers(ctx context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListContainersResponse{}
	for _, c := range s.containers.List(nil) {
		if containerMatches(c, f) {
			resp.Containers = append(resp.Containers, criContainer(c))
		}
	}
	return resp, nil
}

func containerMatches(c *container.Container, f *runtime.ContainerFilter) bool {
	if f == nil {
		return true
	}
	if f.GetId() != "" && !strings.HasPrefix(c.ID, f.GetId()) {
		return false
	}
	if f.GetPodSandboxId() != "" && !strings.HasPrefix(c.PodID, f.GetPodSandboxId()) {
		return false
	}
	if f.GetState() != nil && f.GetState().GetState() != criState(c.State) {
		return false
	}
	for k, v := range f.GetLabelSelector() {
		if c.Labels[k] != v {
			return false
		}
	}
	return true
}
