package spec

import (
	"fmt"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Host is what a container may get from the host at most: the capabilities
// in berthd's own bounding set (a fixed list fails on hosts that lack one,
// e.g. CAP_SYS_RESOURCE) and, for privileged containers, the host's devices.
type Host struct {
	Capabilities []string
	Devices      []specs.LinuxDevice
	// NoHugetlb: the host's cgroups cannot limit huge pages (no hugetlb
	// controller), so hugepage limits are left out, as the peers do.
	NoHugetlb bool
	// PrivilegedWithoutHostDevices: a privileged container gets neither the
	// host's devices nor access to every device (the pod's runtime handler
	// says so), only the devices its config lists.
	PrivilegedWithoutHostDevices bool
}

// capabilities is the container's capability set: the defaults, or all the
// host's for a privileged container; then add_capabilities ("ALL" is every
// capability the host has) and drop_capabilities ("ALL" drops the defaults
// first, so that only what is added remains), as containerd and CRI-O do.
// add_ambient_capabilities are added too and are the ambient set (which the
// kernel keeps only when they are also inheritable); a dropped capability
// leaves every set, as the CRI says.
func capabilities(sc *runtime.LinuxContainerSecurityContext, host []string) (caps, ambient []string, err error) {
	add, err := capNames(sc.GetCapabilities().GetAddCapabilities())
	if err != nil {
		return nil, nil, err
	}
	drop, err := capNames(sc.GetCapabilities().GetDropCapabilities())
	if err != nil {
		return nil, nil, err
	}
	if ambient, err = capNames(sc.GetCapabilities().GetAddAmbientCapabilities()); err != nil {
		return nil, nil, err
	}
	if slices.Contains(ambient, "CAP_ALL") {
		return nil, nil, fmt.Errorf("add_ambient_capabilities: ALL is not a capability: %w", errdefs.ErrInvalidArgument)
	}
	caps = defaultCapabilities()
	switch {
	case sc.GetPrivileged():
		caps, add, drop = slices.Clone(host), nil, nil
	case slices.Contains(add, "CAP_ALL"):
		caps = slices.Clone(host)
	}
	if slices.Contains(drop, "CAP_ALL") {
		caps = nil
	}
	for _, c := range append(add, ambient...) {
		if c != "CAP_ALL" && !slices.Contains(caps, c) {
			if !slices.Contains(host, c) {
				return nil, nil, fmt.Errorf("capability %s is not available on this host: %w", c, errdefs.ErrInvalidArgument)
			}
			caps = append(caps, c)
		}
	}
	dropped := func(c string) bool { return slices.Contains(drop, c) }
	return slices.DeleteFunc(caps, dropped), slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(ambient))), dropped), nil
}

// capNames normalises CRI capability names ("net_admin", "CAP_NET_ADMIN",
// "ALL") to "CAP_NET_ADMIN" / "CAP_ALL".
func capNames(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" || strings.ContainsAny(c, " \t") {
			return nil, fmt.Errorf("capability %q: %w", c, errdefs.ErrInvalidArgument)
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out, nil
}

// applyPrivileged gives a privileged container the host's devices (unless
// host.PrivilegedWithoutHostDevices), a writable /sys and cgroupfs, and no
// masked or read-only paths.
func applyPrivileged(s *specs.Spec, host Host) {
	s.Linux.MaskedPaths, s.Linux.ReadonlyPaths = nil, nil
	if !host.PrivilegedWithoutHostDevices {
		s.Linux.Devices = append(s.Linux.Devices, host.Devices...)
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	}
	for i, m := range s.Mounts {
		if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
		}
	}
}

// applyPaths takes the masked and read-only paths the kubelet sends (it sends
// the defaults unless the pod asks for an unmasked /proc); none sent keeps
// Berth's defaults.
func applyPaths(s *specs.Spec, sc *runtime.LinuxContainerSecurityContext) {
	if p := sc.GetMaskedPaths(); len(p) > 0 {
		s.Linux.MaskedPaths = slices.Clone(p)
	}
	if p := sc.GetReadonlyPaths(); len(p) > 0 {
		s.Linux.ReadonlyPaths = slices.Clone(p)
	}
}
