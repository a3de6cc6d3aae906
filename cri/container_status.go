package cri

import (
	"context"
	"encoding/json"
	"syscall"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/spec"
)

// ContainerStatus reports a container from memory (the exit watchers keep
// the records current). An unknown container is NotFound.
func (s *Server) ContainerStatus(ctx context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	c, err := s.containers.Find(req.GetContainerId())
	if err != nil {
		return nil, err
	}
	resp := &runtime.ContainerStatusResponse{Status: &runtime.ContainerStatus{
		Id: c.ID, Metadata: &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
		State: criState(c.State), CreatedAt: c.CreatedAt.UnixNano(), StartedAt: unixNano(c.StartedAt.UnixNano(), c.StartedAt.IsZero()),
		FinishedAt: unixNano(c.FinishedAt.UnixNano(), c.FinishedAt.IsZero()), ExitCode: c.ExitCode,
		Image: &runtime.ImageSpec{Image: c.Image}, ImageRef: c.ImageRef, ImageId: c.ImageID,
		Reason: c.Reason, Message: c.Message, Labels: c.Labels, Annotations: c.Annotations, LogPath: c.LogPath,
		StopSignal: criSignal(c.StopSignal), Mounts: criMounts(c.Mounts),
	}}
	if u := c.User; u != nil {
		l := &runtime.LinuxContainerUser{Uid: int64(u.UID), Gid: int64(u.GID)}
		for _, g := range u.Groups {
			l.SupplementalGroups = append(l.SupplementalGroups, int64(g))
		}
		resp.Status.User = &runtime.ContainerUser{Linux: l}
	}
	if c.Resources != nil {
		resp.Status.Resources = &runtime.ContainerResources{Linux: criResources(c.Resources)}
	}
	if req.GetVerbose() {
		info, _ := json.Marshal(map[string]any{"container": c, "config": json.RawMessage(orEmpty(c.Config))})
		resp.Info = map[string]string{"info": string(info)}
	}
	return resp, nil
}

func criMounts(in []container.Mount) []*runtime.Mount {
	var out []*runtime.Mount
	for _, m := range in {
		cm := &runtime.Mount{ContainerPath: m.ContainerPath, HostPath: m.HostPath, Readonly: m.Readonly,
			RecursiveReadOnly: m.RecursiveReadOnly, SelinuxRelabel: m.SelinuxRelabel, Propagation: runtime.MountPropagation(m.Propagation),
			MountOptions: m.MountOptions}
		if m.Image != "" {
			cm.Image = &runtime.ImageSpec{Image: m.Image, ImageRef: m.ImageRef}
			cm.ImageSubPath = m.ImageSubPath
		}
		out = append(out, cm)
	}
	return out
}

func criSignal(sig int) runtime.Signal {
	if sig == 0 {
		return runtime.Signal_SIGNAL_RUNTIME_DEFAULT
	}
	return runtime.Signal(runtime.Signal_value["SIGNAL_"+spec.SignalName(syscall.Signal(sig))])
}

func unixNano(v int64, zero bool) int64 {
	if zero {
		return 0
	}
	return v
}

// criContainer is a container as ListContainers shows it.
func criContainer(c *container.Container) *runtime.Container {
	return &runtime.Container{
		Id: c.ID, PodSandboxId: c.PodID, Metadata: &runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt},
		Image: &runtime.ImageSpec{Image: c.Image}, ImageRef: c.ImageRef, ImageId: c.ImageID, State: criState(c.State),
		CreatedAt: c.CreatedAt.UnixNano(), Labels: c.Labels, Annotations: c.Annotations,
	}
}
