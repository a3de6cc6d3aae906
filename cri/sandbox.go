package cri

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/containerd/errdefs"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/claim"
)

// PodManager is what the pod RPCs need of the sandbox domain (sandbox.Manager).
type PodManager interface {
	Create(ctx context.Context, id string, spec sandbox.Spec) (*sandbox.Pod, error)
	Get(id string) (*sandbox.Pod, error)
	Find(idOrPrefix string) (*sandbox.Pod, error)
	List() []*sandbox.Pod
	SetNetwork(id string, n *sandbox.Network) error
	MarkReady(id string) error
	// Use claims a READY pod for a create or start of one of its
	// containers; Claim waits until a stop or remove has it alone.
	Use(id string) (*sandbox.Pod, func(), error)
	Claim(ctx context.Context, id string, op claim.Op) (*sandbox.Pod, func(), error)
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	ProbeUserNamespace(fn func(userns string) error) error
	// Unreadable lists the pods whose records could not be read at start-up:
	// recovery keeps everything of theirs.
	Unreadable() []string
}

// podName is the reserved name of a pod: name_namespace_uid_attempt.
func podName(md *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%d", md.GetName(), md.GetNamespace(), md.GetUid(), md.GetAttempt())
}

func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var namespaceModes = map[runtime.NamespaceMode]string{
	runtime.NamespaceMode_POD:       sandbox.ModePod,
	runtime.NamespaceMode_CONTAINER: sandbox.ModeContainer,
	runtime.NamespaceMode_NODE:      sandbox.ModeNode,
	runtime.NamespaceMode_TARGET:    sandbox.ModeTarget,
}

// podSpec validates a RunPodSandbox request and turns it into a sandbox.Spec.
func podSpec(req *runtime.RunPodSandboxRequest) (sandbox.Spec, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	if md.GetName() == "" || md.GetNamespace() == "" || md.GetUid() == "" {
		return sandbox.Spec{}, fmt.Errorf("pod metadata needs a name, a namespace and a uid: %w", errdefs.ErrInvalidArgument)
	}
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	userns, err := podUserNamespace(ns.GetUsernsOptions())
	if err != nil {
		return sandbox.Spec{}, err
	}
	raw, err := protojson.Marshal(cfg)
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec := sandbox.Spec{
		Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), Attempt: md.GetAttempt(),
		Hostname: cfg.GetHostname(), Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations(),
		LogDirectory: cfg.GetLogDirectory(), CgroupParent: cfg.GetLinux().GetCgroupParent(),
		NetworkMode: namespaceModes[ns.GetNetwork()], PIDMode: namespaceModes[ns.GetPid()], IPCMode: namespaceModes[ns.GetIpc()],
		DNS: sandbox.DNS{Servers: cfg.GetDnsConfig().GetServers(), Searches: cfg.GetDnsConfig().GetSearches(),
			Options: cfg.GetDnsConfig().GetOptions()},
		Sysctls:        cfg.GetLinux().GetSysctls(),
		UserNS:         userns,
		Config:         raw,
		RuntimeHandler: req.GetRuntimeHandler(),
	}
	if userns != nil {
		if err := userns.Validate(spec); err != nil {
			return sandbox.Spec{}, err
		}
	}
	return spec, sandbox.ValidateSysctls(spec.Sysctls, spec)
}

func criNamespaceMode(mode string) runtime.NamespaceMode {
	for k, v := range namespaceModes {
		if v == mode {
			return k
		}
	}
	return runtime.NamespaceMode_POD
}

func criPodState(s sandbox.State) runtime.PodSandboxState {
	if s == sandbox.Ready {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

func podMetadata(p *sandbox.Pod) *runtime.PodSandboxMetadata {
	return &runtime.PodSandboxMetadata{Name: p.Spec.Name, Namespace: p.Spec.Namespace, Uid: p.Spec.UID, Attempt: p.Spec.Attempt}
}

// readyPod finds a pod by ID or unique prefix; one that is not READY is
// FailedPrecondition.
func (s *Server) readyPod(idOrPrefix string) (*sandbox.Pod, error) {
	p, err := s.pods.Find(idOrPrefix)
	if err != nil {
		return nil, err
	}
	if p.State != sandbox.Ready {
		return nil, fmt.Errorf("pod %s is not ready: %w", p.ID, errdefs.ErrFailedPrecondition)
	}
	return p, nil
}

// usePod finds a READY pod by ID or unique prefix and claims it for a
// create or a start of one of its containers: a stop or remove of the pod
// waits for the release, and one that has begun makes this
// FailedPrecondition.
func (s *Server) usePod(idOrPrefix string) (*sandbox.Pod, func(), error) {
	p, err := s.pods.Find(idOrPrefix)
	if err != nil {
		return nil, nil, err
	}
	return s.pods.Use(p.ID)
}

// podUserNamespace is the user namespace a pod asks for: nil for the host's
// (NODE, or nothing asked), its mappings for one of its own (POD). CONTAINER
// and TARGET do not exist for user namespaces.
func podUserNamespace(u *runtime.UserNamespace) (*sandbox.UserNamespace, error) {
	if u == nil { // the mode's zero value is POD: nothing asked is not POD
		return nil, nil
	}
	switch u.GetMode() {
	case runtime.NamespaceMode_NODE:
		if len(u.GetUids()) > 0 || len(u.GetGids()) > 0 {
			return nil, fmt.Errorf("ID mappings given for the host's user namespace (NODE): %w", errdefs.ErrInvalidArgument)
		}
		return nil, nil
	case runtime.NamespaceMode_POD:
		return &sandbox.UserNamespace{UIDs: idMaps(u.GetUids()), GIDs: idMaps(u.GetGids())}, nil
	}
	return nil, fmt.Errorf("user namespace mode %v: only POD and NODE exist for pods: %w", u.GetMode(), errdefs.ErrInvalidArgument)
}

func idMaps(in []*runtime.IDMapping) []sandbox.IDMap {
	out := make([]sandbox.IDMap, len(in))
	for i, m := range in {
		out[i] = sandbox.IDMap{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
	}
	return out
}
