package container

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DeviceNodes resolves a CRI device's host path to the host device nodes it
// names, each with its container path (spec.Input.ResolveDevice). The host
// path's symlinks are followed, as the peers do (device plugins hand out
// /dev/disk/by-id/... style links). A device node gives itself, at
// containerPath. A directory gives every device node under it (walked
// without following links, skipping the dirs a container gets its own of,
// as for privileged containers), each at its path under containerPath, as
// containerd does; unlike containerd, a directory without any device node is
// refused rather than giving nothing, so that the container never runs
// without what it was promised. Anything else (a regular file, a FIFO, a
// missing path) is InvalidArgument naming the path.
func DeviceNodes(hostPath, containerPath string) ([]specs.LinuxDevice, error) {
	resolved, err := filepath.EvalSymlinks(hostPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("device %s: no such host path: %w", hostPath, errdefs.ErrInvalidArgument)
		}
		return nil, fmt.Errorf("device %s: %w", hostPath, err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(resolved, &st); err != nil {
		return nil, fmt.Errorf("device %s: %w", hostPath, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR, unix.S_IFBLK:
		return []specs.LinuxDevice{device(containerPath, &st)}, nil
	case unix.S_IFDIR:
		return dirDevices(hostPath, resolved, containerPath)
	}
	return nil, fmt.Errorf("device %s (%s) is neither a device node nor a directory: %w", hostPath, resolved, errdefs.ErrInvalidArgument)
}

// dirDevices lists the device nodes under the directory dir (hostPath
// resolved), each at its path under containerPath.
func dirDevices(hostPath, dir, containerPath string) ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // a node that vanished meanwhile
		}
		if d.IsDir() {
			if p != dir && skipDevDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&fs.ModeDevice == 0 {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, device(path.Join(containerPath, rel), &st))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", hostPath, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("device %s: the directory holds no device node: %w", hostPath, errdefs.ErrInvalidArgument)
	}
	return out, nil
}
