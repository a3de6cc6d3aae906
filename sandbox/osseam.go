package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/opencontainers/selinux/go-selinux/label"
	"golang.org/x/sys/unix"
)

// OS is what the manager does to the host; tests fake it to inject failures.
type OS interface {
	PinNamespaces(dir string, req NamespaceRequest) (map[string]string, error)
	UnpinNamespaces(pins map[string]string) error
	MountShm(path string, size int64, mountLabel string) error
	Unmount(path string) error
	IsMountPoint(path string) bool
	ProbeUserNamespace(fn func(userns string) error) error
}

// HostOS is the real OS.
type HostOS struct {
	// Holder holds a pod's new user namespace while it is pinned: a binary
	// that waits for EOF on fd 3 when run with "hold" (berth-runtime).
	Holder string
}

// PinNamespaces pins new namespaces (see PinNamespaces).
func (h HostOS) PinNamespaces(dir string, req NamespaceRequest) (map[string]string, error) {
	return PinNamespaces(dir, req, h.Holder)
}

// UnpinNamespaces removes pins (see UnpinNamespaces).
func (HostOS) UnpinNamespaces(pins map[string]string) error { return UnpinNamespaces(pins) }

// MountShm mounts a tmpfs of size bytes for the pod's /dev/shm, its files
// labelled mountLabel on a host with SELinux.
func (HostOS) MountShm(path string, size int64, mountLabel string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return err
	}
	opts := label.FormatMountLabel("mode=1777,size="+strconv.FormatInt(size, 10), mountLabel)
	if err := unix.Mount("shm", path, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount shm at %s: %w", path, err)
	}
	return nil
}

// Unmount detaches a mount; a path that is not mounted (or gone) is fine.
func (HostOS) Unmount(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount %s: %w", path, err)
}

// IsMountPoint reports whether path is the root of a mount (a pin or a tmpfs).
func (HostOS) IsMountPoint(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	if st.Dev != parent.Dev {
		return true
	}
	// A bind-mounted nsfs file or a same-device bind: ask mountinfo.
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	return containsMountPoint(string(data), path)
}
