package spec

import (
	"fmt"
	"path"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ResolveDevice gives the host device nodes a CRI device's host path names,
// each with its path in the container (containerPath, or under it for a
// directory). Build does no I/O: the caller passes the host's resolver
// (sandbox/container.DeviceNodes), tests a fake.
type ResolveDevice func(hostPath, containerPath string) ([]specs.LinuxDevice, error)

// applyDevices adds the config's devices (device plugins hand the kubelet
// host device paths) as device nodes and device cgroup rules with their
// permissions. A device at a path that already has one (a privileged
// container's host device, or an earlier entry) replaces it, as with the
// peers, so that no path is listed twice. A privileged container may use
// every device already (its cgroup allows all), so it gets no narrower
// rules.
//
// In a pod with a user namespace of its own the devices are honoured too, as
// containerd does: libcontainer cannot mknod there and bind-mounts the host
// node instead, so the node keeps its host owner and mode; the pod's root is
// not the host's root, so it opens the node only as the node's mode allows
// others (its capabilities do not reach an inode whose owner it does not
// map), and the device cgroup, set from the host, still applies. Nothing is
// granted beyond what a container of the host's user namespace gets.
func applyDevices(s *specs.Spec, devs []*runtime.Device, resolve ResolveDevice, allDevices bool) error {
	for _, d := range devs {
		access, err := deviceAccess(d.GetPermissions())
		if err != nil {
			return fmt.Errorf("devices (%s): %w", d.GetHostPath(), err)
		}
		ctrPath, err := deviceContainerPath(d)
		if err != nil {
			return err
		}
		if resolve == nil {
			return fmt.Errorf("devices (%s): no resolver for host devices: %w", d.GetHostPath(), errdefs.ErrNotImplemented)
		}
		nodes, err := resolve(d.GetHostPath(), ctrPath)
		if err != nil {
			return fmt.Errorf("devices: %w", err)
		}
		for _, n := range nodes {
			addDevice(s, n)
			if !allDevices {
				major, minor := n.Major, n.Minor
				s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
					Allow: true, Type: n.Type, Major: &major, Minor: &minor, Access: access,
				})
			}
		}
	}
	return nil
}

// deviceAccess checks CRI device permissions, a subset of "rwm" ("" is all
// three), and gives them in the cgroup's order.
func deviceAccess(perms string) (string, error) {
	if perms == "" {
		return "rwm", nil
	}
	var out strings.Builder
	for _, c := range "rwm" {
		if strings.ContainsRune(perms, c) {
			out.WriteRune(c)
		}
	}
	if strings.Trim(perms, "rwm") != "" {
		return "", fmt.Errorf("permissions %q are not a subset of \"rwm\": %w", perms, errdefs.ErrInvalidArgument)
	}
	return out.String(), nil
}

// deviceContainerPath is where a device goes in the container: its
// container_path, cleaned, or its host_path when it has none.
func deviceContainerPath(d *runtime.Device) (string, error) {
	p := d.GetContainerPath()
	if p == "" {
		p = d.GetHostPath()
	}
	if !path.IsAbs(p) || path.Clean(p) == "/" {
		return "", fmt.Errorf("devices (%s): container path %q is not an absolute path below /: %w",
			d.GetHostPath(), p, errdefs.ErrInvalidArgument)
	}
	return path.Clean(p), nil
}

// addDevice lists n, replacing a device listed at its path.
func addDevice(s *specs.Spec, n specs.LinuxDevice) {
	for i := range s.Linux.Devices {
		if s.Linux.Devices[i].Path == n.Path {
			s.Linux.Devices[i] = n
			return
		}
	}
	s.Linux.Devices = append(s.Linux.Devices, n)
}
