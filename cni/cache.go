package cni

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// cached is one attachment as libcni caches it after an ADD: enough to DEL it
// later even if the conf dir changed meanwhile.
type cached struct {
	ContainerID    string         `json:"containerId"`
	Config         []byte         `json:"config"`
	IfName         string         `json:"ifName"`
	NetworkName    string         `json:"networkName"`
	NetNS          string         `json:"netns"`
	CniArgs        [][2]string    `json:"cniArgs"`
	CapabilityArgs map[string]any `json:"capabilityArgs"`
}

// cachedAttachments lists the cached attachments of one pod, or of every pod
// when podID is "". Unreadable entries are logged and skipped.
func (m *Manager) cachedAttachments(ctx context.Context, podID string) []cached {
	return readAttachments(ctx, filepath.Join(m.opts.CacheDir, "results"), podID)
}

// pendingAttachments lists the ADDs in flight (pending.go) as
// cachedAttachments lists the cached ones.
func (m *Manager) pendingAttachments(ctx context.Context, podID string) []cached {
	if m.opts.CacheDir == "" {
		return nil
	}
	return readAttachments(ctx, m.pendingDir(), podID)
}

func readAttachments(ctx context.Context, dir, podID string) []cached {
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var out []cached
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), ".") {
			continue // a temp file
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var c cached
		if err := json.Unmarshal(data, &c); err != nil || c.ContainerID == "" {
			log.G(ctx).WithField("file", f).Warn("unreadable CNI cache entry")
			continue
		}
		if podID == "" || c.ContainerID == podID {
			out = append(out, c)
		}
	}
	return out
}

// del runs DEL for a cached attachment (the loopback one needs none).
func (m *Manager) del(ctx context.Context, c cached, netns string) error {
	ctx, cancel := m.pluginContext(ctx)
	defer cancel()
	rt := &libcni.RuntimeConf{ContainerID: c.ContainerID, NetNS: netns, IfName: c.IfName, Args: c.CniArgs, CapabilityArgs: c.CapabilityArgs}
	if list, err := libcni.NetworkConfFromBytes(c.Config); err == nil && len(list.Plugins) > 0 {
		if err := m.config().DelNetworkList(ctx, list, rt); err != nil {
			return fmt.Errorf("detach pod %s from %q: %w", c.ContainerID, c.NetworkName, err)
		}
		return nil
	}
	conf, err := libcni.NetworkPluginConfFromBytes(c.Config)
	if err != nil {
		return fmt.Errorf("cached CNI config of pod %s: %w", c.ContainerID, err)
	}
	if err := m.config().DelNetwork(ctx, conf, rt); err != nil {
		return fmt.Errorf("detach pod %s from %q: %w", c.ContainerID, c.NetworkName, err)
	}
	return nil
}

// Collect waits for the plugins a killed berthd left running (orphans.go),
// then detaches every cached or pending attachment whose pod is not in
// live (pods that vanished in a crash between ADD and their record, or whose
// removal was interrupted), then asks the pod network's plugins to GC (CNI 1.1), which
// also frees what a crash in the middle of an ADD left uncached: no IP stays
// allocated for a pod that is gone. Failures are logged; the next start tries
// again.
func (m *Manager) Collect(ctx context.Context, live map[string]bool) {
	m.awaitOrphans(ctx)
	defer m.gc(ctx, live)
	for _, c := range m.cachedAttachments(ctx, "") {
		if !live[c.ContainerID] {
			m.collect(ctx, c)
		}
	}
	for _, c := range m.pendingAttachments(ctx, "") {
		if !live[c.ContainerID] && m.collect(ctx, c) {
			if err := m.settlePending(c.ContainerID, c.IfName); err != nil {
				log.G(ctx).WithError(err).Warn("drop the note of a network ADD")
			}
		}
	}
}

// collect detaches the attachment of a pod that is gone; it says whether it
// did.
func (m *Manager) collect(ctx context.Context, c cached) bool {
	netns := c.NetNS
	if _, err := os.Stat(netns); err != nil {
		netns = ""
	}
	log.G(ctx).WithField("pod", c.ContainerID).Info("detaching the network of a pod that is gone")
	if err := m.del(ctx, c, netns); err != nil {
		log.G(ctx).WithError(err).WithField("pod", c.ContainerID).Warn("could not detach a gone pod")
		return false
	}
	return true
}

// gc runs CNI GC on the pod network with the live pods as valid attachments.
func (m *Manager) gc(ctx context.Context, live map[string]bool) {
	list, err := m.load(ctx)
	if err != nil {
		return
	}
	args := &libcni.GCArgs{}
	for id := range live {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: id, IfName: PodInterface})
	}
	gcCtx, cancel := m.pluginContext(ctx)
	defer cancel()
	if err := m.config().GCNetworkList(gcCtx, list, args); err != nil {
		log.G(ctx).WithError(err).Warn("CNI GC failed")
	}
	if list.Name == defaultNetworkName && m.opts.DataDir != "" {
		m.collectLeases(ctx, filepath.Join(m.opts.DataDir, list.Name), live)
	}
}

// collectLeases frees the default network's host-local leases held by pods
// that are gone. host-local does not implement CNI GC yet, and a crash in the
// middle of an ADD can leave a lease that no cached attachment records; the
// default network's lease dir is Berth's own.
func (m *Manager) collectLeases(ctx context.Context, dir string, live map[string]bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if net.ParseIP(e.Name()) == nil {
			continue // lock, last_reserved_ip.*
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		owner, _, _ := strings.Cut(strings.ReplaceAll(string(data), "\r", ""), "\n")
		if owner == "" || live[strings.TrimSpace(owner)] {
			continue
		}
		log.G(ctx).WithFields(log.Fields{"ip": e.Name(), "pod": owner}).Info("freeing the address of a pod that is gone")
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			log.G(ctx).WithError(err).Warn("free a stale lease")
		}
	}
}
