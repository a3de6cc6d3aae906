package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

// Options configure the pod network; cmd/berthd fills them from berth.toml.
type Options struct {
	ConfDir        string
	BinDirs        []string
	DefaultNetwork bool
	DefaultBridge  string
	// DefaultSubnet, when set, is the default network's subnet; empty, the
	// kubelet's pod CIDR (SetPodCIDR) is, else FallbackSubnet.
	DefaultSubnet string
	// CacheDir keeps libcni's record of each attachment (results/), used to
	// detach with the config the pod was attached with, and the notes of the
	// ADDs in flight (pending/); berthd always sets it.
	CacheDir string
	// DataDir is where the default network's host-local IPAM keeps its leases.
	DataDir string
	// PluginTimeout bounds each CNI operation; zero is DefaultPluginTimeout.
	PluginTimeout time.Duration
	// PodCIDRFile keeps the kubelet's pod CIDR across restarts ("": memory only).
	PodCIDRFile string
}

const (
	defaultNetworkName = "berth-default"
	// FallbackSubnet is the default network's subnet when neither the
	// config nor the kubelet chose one.
	FallbackSubnet = "10.88.0.0/16"
)

// Manager finds the pod network and tells whether it is usable.
type Manager struct {
	opts Options

	cidrMu     sync.Mutex
	cidrLoaded bool
	podCIDRs   []string // the kubelet's pod CIDRs, see SetPodCIDR
}

// New returns a Manager; it touches nothing until it is asked.
func New(opts Options) *Manager {
	return &Manager{opts: opts}
}

// ErrNotReady is wrapped by every Status error: no usable pod network.
var ErrNotReady = errors.New("network plugin not ready")

// Status returns nil when the pod network is usable, or an error wrapping
// ErrNotReady that says what is missing.
func (m *Manager) Status(ctx context.Context) error {
	list, err := m.load(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	}
	var plugins []string
	for _, p := range list.Plugins {
		plugins = append(plugins, p.Network.Type)
		if p.Network.IPAM.Type != "" {
			plugins = append(plugins, p.Network.IPAM.Type)
		}
	}
	for _, p := range plugins {
		if _, err := invoke.FindInPath(p, m.opts.BinDirs); err != nil {
			return fmt.Errorf("%w: network %q: plugin %q not found in %v", ErrNotReady, list.Name, p, m.opts.BinDirs)
		}
	}
	// CNI 1.1 plugins answer STATUS themselves (older configs skip it).
	ctx, cancel := m.pluginContext(ctx)
	defer cancel()
	if err := m.config().GetStatusNetworkList(ctx, list); err != nil {
		return fmt.Errorf("%w: network %q: %w", ErrNotReady, list.Name, err)
	}
	return nil
}

// load returns the pod network: the first config in the conf dir, else the
// embedded default network when enabled.
func (m *Manager) load(ctx context.Context) (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(m.opts.ConfDir, []string{".conflist", ".conf", ".json"})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read CNI config dir %s: %w", m.opts.ConfDir, err)
	}
	if len(files) > 0 {
		return loadFile(files[0])
	}
	if !m.opts.DefaultNetwork {
		return nil, fmt.Errorf("no CNI network config in %s and the default network is disabled", m.opts.ConfDir)
	}
	return m.defaultNetwork(ctx, true)
}

// defaultNetwork is the embedded network, with or without portmap (which a
// pod without port mappings does not need: it would only cost an exec on
// ADD and on DEL; DEL uses the config the ADD cached).
func (m *Manager) defaultNetwork(ctx context.Context, portmap bool) (*libcni.NetworkConfigList, error) {
	conf, err := defaultNetworkConfig(m.opts.DefaultBridge, m.defaultSubnets(ctx), m.opts.DataDir, portmap)
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(conf)
}

// loadFile reads a .conflist, or a single-plugin .conf/.json wrapped as a list.
func loadFile(path string) (*libcni.NetworkConfigList, error) {
	list, listErr := libcni.NetworkConfFromFile(path)
	if listErr == nil && len(list.Plugins) > 0 {
		return list, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CNI config %s: %w", path, err)
	}
	single, err := libcni.NetworkPluginConfFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("CNI config %s: %w", path, errors.Join(listErr, err))
	}
	// Wrap the single plugin as a one-plugin list, as libcni used to.
	wrapped, err := json.Marshal(map[string]any{
		"cniVersion": single.Network.CNIVersion,
		"name":       single.Network.Name,
		"plugins":    []json.RawMessage{single.Bytes},
	})
	if err != nil {
		return nil, err
	}
	return libcni.NetworkConfFromBytes(wrapped)
}

// defaultNetworkConfig renders the embedded bridge network: host-local IPAM on
// the subnets (one range set each), masquerade for egress, portmap for
// hostPort (when asked for).
// Loopback is not part of it: Berth brings lo up in every pod's namespace as
// it makes it.
func defaultNetworkConfig(bridge string, subnets []string, dataDir string, portmap bool) ([]byte, error) {
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, s := range subnets {
		ranges = append(ranges, []map[string]string{{"subnet": s}})
		dst := "0.0.0.0/0"
		if ip, _, err := net.ParseCIDR(s); err == nil && ip.To4() == nil {
			dst = "::/0"
		}
		routes = append(routes, map[string]string{"dst": dst})
	}
	ipam := map[string]any{"type": "host-local", "ranges": ranges, "routes": routes}
	if dataDir != "" {
		ipam["dataDir"] = dataDir
	}
	plugins := []any{map[string]any{
		"type":        "bridge",
		"bridge":      bridge,
		"isGateway":   true,
		"ipMasq":      true,
		"hairpinMode": true,
		"ipam":        ipam,
	}}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}})
	}
	conf := map[string]any{"cniVersion": "1.1.0", "name": defaultNetworkName, "plugins": plugins}
	return json.Marshal(conf)
}
