package cri

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/containerd/errdefs"

	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/sandbox/container"
)

// Reasons of not-ready conditions, as the kubelet and crictl show them.
const networkNotReadyReason = "NetworkPluginNotReady"

// runtimeHandlers lists the default handler ("") and the configured ones,
// by name, with what they support, so that the kubelet uses recursive
// read-only mounts and user namespaces where the host has them: the same
// for every handler, which all run Berth's own runtime.
func (s *Server) runtimeHandlers() []*runtime.RuntimeHandler {
	s.rroOnce.Do(func() { s.rro = container.RecursiveReadOnlySupported() })
	rro, userns := s.rro, s.userNamespaces()
	names := append([]string{""}, slices.Sorted(maps.Keys(s.config.RuntimeHandlers))...)
	out := make([]*runtime.RuntimeHandler, 0, len(names))
	for _, name := range names {
		out = append(out, &runtime.RuntimeHandler{Name: name,
			Features: &runtime.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: rro, UserNamespaces: userns}})
	}
	return out
}

// runtimeHandler returns the options of the handler named name: the
// default's ("") or a configured one's; another name is InvalidArgument.
func (s *Server) runtimeHandler(name string) (config.RuntimeHandler, error) {
	if name == "" {
		return config.RuntimeHandler{}, nil
	}
	h, ok := s.config.RuntimeHandlers[name]
	if !ok {
		return h, fmt.Errorf("runtime handler %q is not configured (berth.toml [runtime_handlers.%s]): %w", name, name, errdefs.ErrInvalidArgument)
	}
	return h, nil
}

// userNamespaces says (probed once) whether pods may have user namespaces of
// their own: the kernel must make them and idmap the image store's
// filesystem, through which containers see their layers.
func (s *Server) userNamespaces() bool {
	s.usernsOnce.Do(func() {
		dir := filepath.Join(s.config.Root, "images")
		err := s.pods.ProbeUserNamespace(func(userns string) error { return container.IDMapSupported(dir, userns) })
		if err != nil {
			log.L.WithError(err).Warn("pods cannot have user namespaces of their own on this host")
		}
		s.userns = err == nil
	})
	return s.userns
}

// runtimeFeatures are what Berth does of the CRI whatever the handler:
// SupplementalGroupsPolicy, and the bind options noexec, nodev and nosuid of
// Mount.mount_options (volumes.FromCRI). A pod with its own user namespace
// cannot use the host's network (sandbox.UserNamespace.Validate), so
// user_namespaces_host_network stays false.
func runtimeFeatures() *runtime.RuntimeFeatures {
	return &runtime.RuntimeFeatures{SupplementalGroupsPolicy: true, MountOptions: true}
}

// Status reports the RuntimeReady and NetworkReady conditions, the runtime
// handler's features and the runtime's (runtimeFeatures). The runtime is
// ready once berthd serves (it serves only after recovery); the network is ready
// when a usable CNI network and its plugins exist. With verbose, info["config"]
// holds the effective configuration as JSON.
func (s *Server) Status(ctx context.Context, req *runtime.StatusRequest) (*runtime.StatusResponse, error) {
	networkReady := &runtime.RuntimeCondition{Type: runtime.NetworkReady, Status: true}
	if err := s.network.Status(ctx); err != nil {
		log.G(ctx).WithError(err).Debug("network not ready")
		networkReady.Status = false
		networkReady.Reason = networkNotReadyReason
		networkReady.Message = err.Error()
	}
	resp := &runtime.StatusResponse{Status: &runtime.RuntimeStatus{Conditions: []*runtime.RuntimeCondition{
		{Type: runtime.RuntimeReady, Status: true},
		networkReady,
	}}, RuntimeHandlers: s.runtimeHandlers(), Features: runtimeFeatures()}
	if req.GetVerbose() {
		resp.Info = map[string]string{"config": s.config.JSON()}
	}
	return resp, nil
}
