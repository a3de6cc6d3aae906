package cri

import (
	"context"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
)

// ListPodSandbox lists pods from memory, filtered by id (or id prefix), state
// and label selector (every label must match).
func (s *Server) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	f := req.GetFilter()
	resp := &runtime.ListPodSandboxResponse{}
	for _, p := range s.pods.List() {
		if !podMatches(p, f) {
			continue
		}
		resp.Items = append(resp.Items, &runtime.PodSandbox{
			Id: p.ID, Metadata: podMetadata(p), State: criPodState(p.State), CreatedAt: p.CreatedAt.UnixNano(),
			Labels: p.Spec.Labels, Annotations: p.Spec.Annotations, RuntimeHandler: p.Spec.RuntimeHandler,
		})
	}
	return resp, nil
}

func podMatches(p *sandbox.Pod, f *runtime.PodSandboxFilter) bool {
	if f == nil {
		return true
	}
	if f.GetId() != "" && !strings.HasPrefix(p.ID, f.GetId()) {
		return false
	}
	if f.GetState() != nil && f.GetState().GetState() != criPodState(p.State) {
		return false
	}
	for k, v := range f.GetLabelSelector() {
		if got, ok := p.Spec.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
