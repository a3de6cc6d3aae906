package cri

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
)

// PodSandboxStatus reports a pod. An unknown pod is NotFound. With verbose,
// info["info"] holds the pod's record and CRI config as JSON.
func (s *Server) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	id := req.GetPodSandboxId()
	if id == "" {
		return nil, fmt.Errorf("pod sandbox id is empty: %w", errdefs.ErrInvalidArgument)
	}
	p, err := s.pods.Find(id)
	if err != nil {
		return nil, err
	}
	resp := &runtime.PodSandboxStatusResponse{Status: podStatus(p)}
	if req.GetVerbose() {
		info, err := json.Marshal(map[string]any{"pod": p, "config": json.RawMessage(orEmpty(p.Spec.Config))})
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func orEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

func podStatus(p *sandbox.Pod) *runtime.PodSandboxStatus {
	return &runtime.PodSandboxStatus{
		Id:        p.ID,
		Metadata:  podMetadata(p),
		State:     criPodState(p.State),
		CreatedAt: p.CreatedAt.UnixNano(),
		Network:   podNetworkStatus(p),
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: &runtime.NamespaceOption{
			Network: criNamespaceMode(p.Spec.NetworkMode),
			Pid:     criNamespaceMode(p.Spec.PIDMode),
			Ipc:     criNamespaceMode(p.Spec.IPCMode),
		}}},
		Labels:         p.Spec.Labels,
		Annotations:    p.Spec.Annotations,
		RuntimeHandler: p.Spec.RuntimeHandler,
	}
}

func podNetworkStatus(p *sandbox.Pod) *runtime.PodSandboxNetworkStatus {
	st := &runtime.PodSandboxNetworkStatus{}
	if p.Network == nil || len(p.Network.IPs) == 0 {
		return st
	}
	st.Ip = p.Network.IPs[0]
	for _, ip := range p.Network.IPs[1:] {
		st.AdditionalIps = append(st.AdditionalIps, &runtime.PodIP{Ip: ip})
	}
	return st
}
