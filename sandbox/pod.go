package sandbox

// The state machine of a pod sandbox:
//
//	(none) --Commit--> READY --Stop--> NOTREADY --Delete--> (none)
//	                     \__________Delete (after Stop)______/
//
// A pod whose namespaces could not be verified at start-up is NOTREADY too,
// so the kubelet stops and removes it. Every state change is written to the
// pod's record before it is visible in memory.

import (
	"encoding/json"
	"time"
)

// State is a pod sandbox's state.
type State string

// The states of a pod sandbox.
const (
	Ready    State = "READY"
	NotReady State = "NOTREADY"
)

// Namespace modes, as CRI's NamespaceMode.
const (
	ModePod       = "pod"
	ModeContainer = "container"
	ModeNode      = "node"
	ModeTarget    = "target"
)

// DNS is the pod's resolver configuration; empty means the host's resolv.conf.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Spec is what a pod is made from (the runtime's view of the CRI config).
type Spec struct {
	Name, Namespace, UID          string
	Attempt                       uint32
	Hostname                      string
	Labels, Annotations           map[string]string
	LogDirectory                  string
	CgroupParent                  string
	RuntimeHandler                string
	NetworkMode, PIDMode, IPCMode string
	DNS                           DNS
	ShmSize                       int64 // bytes; 0 means DefaultShmSize
	// Sysctls are set in the pod's own namespaces (see ValidateSysctls).
	Sysctls map[string]string
	// UserNS is the pod's own user namespace; nil is the host's.
	UserNS *UserNamespace `json:",omitempty"`
	// SELinuxProcessLabel and SELinuxMountLabel are the pod's labels on a
	// host with SELinux: its files and /dev/shm get the mount label, its
	// containers the pod's MCS level.
	SELinuxProcessLabel string `json:",omitempty"`
	SELinuxMountLabel   string `json:",omitempty"`
	// Config is the CRI config as JSON, kept for verbose status.
	Config []byte
}

// DefaultShmSize is the size of a pod's /dev/shm when the pod does not say.
const DefaultShmSize = 64 << 20

// Pod is a pod sandbox's record.
type Pod struct {
	ID        string    `json:"id"`
	Spec      Spec      `json:"spec"`
	State     State     `json:"state"`
	CreatedAt time.Time `json:"created_at"`
	// Dir holds the pod's files (hostname, hosts, resolv.conf, shm/, ns/).
	Dir string `json:"dir"`
	// Pins are the pinned namespaces by kind (absent: the host's).
	Pins map[string]string `json:"pins,omitempty"`
	// ShmPath is the tmpfs for /dev/shm ("" with the host's IPC namespace).
	ShmPath string `json:"shm_path,omitempty"`
	// Network is the pod's network attachment, recorded before
	// RunPodSandbox returns.
	Network *Network `json:"network,omitempty"`
	// Creating says RunPodSandbox has not finished with the pod (its network
	// is being attached): it is NOTREADY and not listed, and a restart of
	// berthd removes it, network included (MarkReady ends it).
	Creating bool `json:"creating,omitempty"`
}

// Network is a pod's network attachment: its IPs (the pod IP first) and the
// network plugin's result as it gave it.
type Network struct {
	IPs    []string        `json:"ips"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Path of one of the pod's files.
func (p *Pod) HostnamePath() string   { return p.Dir + "/hostname" }
func (p *Pod) HostsPath() string      { return p.Dir + "/hosts" }
func (p *Pod) ResolvConfPath() string { return p.Dir + "/resolv.conf" }
