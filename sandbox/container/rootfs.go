package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// MountRootfs mounts a container's overlay root filesystem at target with the
// given options; when dir is set, their paths are relative to it (long layer
// chains; see images.Rootfs.MountOptions).
func MountRootfs(options, dir, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	mount := func() error { return unix.Mount("overlay", target, "overlay", 0, options) }
	var err error
	if dir == "" {
		err = mount()
	} else {
		err = inDir(dir, mount)
	}
	if err != nil {
		return fmt.Errorf("mount rootfs at %s: %w", target, err)
	}
	return nil
}

// inDir runs fn on an OS thread of its own whose working directory is dir,
// leaving the process's untouched: the thread stops sharing its filesystem
// context (CLONE_FS) first, and exits afterwards.
func inDir(dir string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the changed thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// UnmountRootfs unmounts a container's root filesystem; an unmounted or
// missing target is fine.
func UnmountRootfs(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return fmt.Errorf("unmount rootfs %s: %w", target, err)
}

// UserFiles reads /etc/passwd and /etc/group inside a root filesystem,
// resolving symlinks without leaving it; missing files are empty.
func UserFiles(rootfs string) (passwd, group []byte, err error) {
	read := func(name string) ([]byte, error) {
		p, err := securejoin.SecureJoin(rootfs, name)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return data, err
	}
	if passwd, err = read("/etc/passwd"); err != nil {
		return nil, nil, err
	}
	group, err = read("/etc/group")
	return passwd, group, err
}

// maxProfile is the largest security profile file read.
const maxProfile = 1 << 20

// ReadProfile reads a security profile file (a seccomp Localhost profile)
// the pod spec names; a missing or oversized one is InvalidArgument.
func ReadProfile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProfile+1))
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	if len(data) > maxProfile {
		return nil, fmt.Errorf("profile %s is over %d bytes: %w", path, maxProfile, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// PrepareLogPath makes the directory of a container's log file.
func PrepareLogPath(path string) error {
	return os.MkdirAll(filepath.Dir(path), 0o755)
}

// OwnOOMScoreAdj is berthd's own oom_score_adj: the lowest value it may give
// a container without CAP_SYS_RESOURCE.
func OwnOOMScoreAdj() int {
	data, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0
	}
	return v
}

// RemoveDir removes a container's state dir once its rootfs is unmounted.
func RemoveDir(dir string) error { return os.RemoveAll(dir) }

// DirNames lists the names of the directories in dir (none if it is missing).
func DirNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}
