package cgroups

import (
	"fmt"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Update sets the resources of the cgroup at path (e.g. "/berth/<pod>"),
// making it where it does not exist yet: in every v1 controller, or in the
// v2 tree. Unset values are left as they are.
func Update(path string, res *specs.LinuxResources) error {
	return update(cgroups.Mode() == cgroups.Unified, mountRoot, path, res)
}

// update is Update on the v2 tree at root when unified, else on the host's
// v1 hierarchies.
func update(unified bool, root, path string, res *specs.LinuxResources) error {
	if unified {
		if _, err := cgroup2.NewManager(root, path, cgroup2.ToResources(res)); err != nil {
			return fmt.Errorf("update cgroup %s: %w", path, err)
		}
		return nil
	}
	if _, err := cgroup1.New(cgroup1.StaticPath(path), res); err != nil {
		return fmt.Errorf("update cgroup %s: %w", path, err)
	}
	return nil
}
