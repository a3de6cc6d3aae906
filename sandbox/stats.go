package sandbox

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/cgroups"
)

// InterfaceStats are a network interface's counters.
type InterfaceStats struct {
	Name                                 string
	RxBytes, RxErrors, TxBytes, TxErrors uint64
	RxPackets, RxDropped                 uint64
	TxPackets, TxDropped                 uint64
}

// StatsReader reads the resource use of pods and containers: cgroups and
// the interfaces of pinned network namespaces.
type StatsReader struct{ cgroups *cgroups.Reader }

// NewStatsReader probes the host's cgroup layout.
func NewStatsReader() (*StatsReader, error) {
	r, err := cgroups.NewReader()
	if err != nil {
		return nil, err
	}
	return &StatsReader{cgroups: r}, nil
}

// Cgroup reads the stats of the cgroup at path (see cgroups.Reader.Stats).
func (r *StatsReader) Cgroup(path string) (*cgroups.Stats, error) { return r.cgroups.Stats(path) }

// Network reads the counters of the interfaces (but loopback) of the network
// namespace pinned at pin, over netlink, without entering it.
func (r *StatsReader) Network(pin string) ([]InterfaceStats, error) {
	ns, err := netns.GetFromPath(pin)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", pin, err)
	}
	defer ns.Close()
	// Only the route family: without a family, every one is opened, and
	// kernels without xfrm_user loaded refuse that one.
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink in %s: %w", pin, err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("interfaces in %s: %w", pin, err)
	}
	var out []InterfaceStats
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Statistics == nil {
			continue
		}
		out = append(out, InterfaceStats{Name: a.Name, RxBytes: a.Statistics.RxBytes, RxErrors: a.Statistics.RxErrors,
			TxBytes: a.Statistics.TxBytes, TxErrors: a.Statistics.TxErrors, RxPackets: a.Statistics.RxPackets,
			RxDropped: a.Statistics.RxDropped, TxPackets: a.Statistics.TxPackets, TxDropped: a.Statistics.TxDropped})
	}
	return out, nil
}

// Filesystem reads the size and the free inodes of the filesystem that
// holds path (cAdvisor's container_fs_limit_bytes and
// container_fs_inodes_free of a writable layer).
func (r *StatsReader) Filesystem(path string) (sizeBytes, inodesFree uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return st.Blocks * uint64(st.Bsize), st.Ffree, nil
}
