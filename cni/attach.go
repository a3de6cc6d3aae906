package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/log"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// PortMapping is one hostPort mapping (the portmap plugin's portMappings).
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Pod says which pod to attach and how.
type Pod struct {
	ID, Name, Namespace, UID string
	NetNS                    string // pinned network namespace path
	PortMappings             []PortMapping
	// IngressRate and EgressRate are in bits per second (0: unlimited).
	IngressRate, EgressRate int64
	// DNS is passed to plugins that take the dns capability.
	DNS *DNS
}

// DNS is the pod's resolver configuration.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// Attachment is what an ADD gave the pod.
type Attachment struct {
	Network string          `json:"network"`
	IPs     []string        `json:"ips"` // first is the pod IP
	Result  json.RawMessage `json:"result"`
}

// PodInterface is the interface CNI adds to a pod.
const PodInterface = "eth0"

func (m *Manager) config() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(m.opts.BinDirs, m.opts.CacheDir, &groupExec{running: m.noteRunning})
}

func runtimeConf(p Pod, ifName string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: p.ID, NetNS: p.NetNS, IfName: ifName,
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", p.Namespace}, {"K8S_POD_NAME", p.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", p.ID}, {"K8S_POD_UID", p.UID}},
		CapabilityArgs: map[string]any{},
	}
	if len(p.PortMappings) > 0 {
		rt.CapabilityArgs["portMappings"] = p.PortMappings
	}
	if p.DNS != nil {
		rt.CapabilityArgs["dns"] = p.DNS
	}
	if p.IngressRate > 0 || p.EgressRate > 0 {
		rt.CapabilityArgs["bandwidth"] = map[string]int64{
			"ingressRate": p.IngressRate, "ingressBurst": burst(p.IngressRate),
			"egressRate": p.EgressRate, "egressBurst": burst(p.EgressRate),
		}
	}
	return rt
}

// burst allows a tenth of a second at the rate (at least one full packet).
func burst(rate int64) int64 {
	if rate == 0 {
		return 0
	}
	return max(rate/10, 1<<16)
}

// Setup attaches the pod to the pod network (its loopback is up already: the
// namespace was made so). A failed ADD is undone with DEL before the error
// returns.
func (m *Manager) Setup(ctx context.Context, p Pod) (*Attachment, error) {
	list, err := m.load(ctx)
	if err == nil && list.Name == defaultNetworkName && len(p.PortMappings) == 0 {
		list, err = m.defaultNetwork(ctx, false)
	}
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w: %w", p.ID, ErrNotReady, err)
	}
	rt := runtimeConf(p, PodInterface)
	if err := m.notePending(list, rt); err != nil {
		return nil, err
	}
	addCtx, cancel := m.pluginContext(ctx)
	res, err := m.config().AddNetworkList(addCtx, list, rt)
	cancel()
	if err != nil {
		// libcni caches only successful ADDs: Teardown undoes this one by
		// its pending note, and whatever is cached.
		undo, cancel := m.undoContext(ctx)
		defer cancel()
		if derr := m.Teardown(undo, p); derr != nil {
			log.G(ctx).WithError(derr).WithField("pod", p.ID).Warn("undo of a failed CNI ADD failed")
		}
		return nil, fmt.Errorf("attach pod %s to network %q: %w", p.ID, list.Name, err)
	}
	if err := m.settlePending(p.ID, PodInterface); err != nil {
		log.G(ctx).WithError(err).WithField("pod", p.ID).Warn("drop the note of a cached network ADD")
	}
	att, err := attachment(list.Name, res)
	if err != nil {
		undo, cancel := m.undoContext(ctx)
		defer cancel()
		if derr := m.Teardown(undo, p); derr != nil {
			log.G(ctx).WithError(derr).WithField("pod", p.ID).Warn("detach after an unreadable CNI result failed")
		}
		return nil, fmt.Errorf("pod %s: %w", p.ID, err)
	}
	return att, nil
}

func attachment(network string, res types.Result) (*Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("CNI result: %w", err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	a := &Attachment{Network: network, Result: raw}
	for _, ip := range r.IPs {
		if ip.Address.IP != nil && !ip.Address.IP.IsLoopback() {
			a.IPs = append(a.IPs, ip.Address.IP.String())
		}
	}
	return a, nil
}

// Teardown detaches the pod from the network it was attached to, or was
// being attached to when an ADD failed or berthd died (the cached or noted
// config is used, so a changed conf dir does not strand IPs). It is
// idempotent: a missing netns, attachment or cache entry is fine.
func (m *Manager) Teardown(ctx context.Context, p Pod) error {
	if _, err := os.Stat(p.NetNS); err != nil {
		p.NetNS = "" // plugins release addresses without the namespace
	}
	var errs []error
	for _, cached := range m.cachedAttachments(ctx, p.ID) {
		if err := m.del(ctx, cached, p.NetNS); err != nil {
			errs = append(errs, err)
		}
	}
	for _, pending := range m.pendingAttachments(ctx, p.ID) {
		err := m.del(ctx, pending, p.NetNS)
		if err == nil {
			err = m.settlePending(pending.ContainerID, pending.IfName)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
