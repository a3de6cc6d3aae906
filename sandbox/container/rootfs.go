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
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
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

// EmptyLowerDir makes (if missing) and returns dir/.empty, an empty dir to
// put under a single read-only layer: overlayfs without an upper dir needs
// two lower dirs.
func EmptyLowerDir(dir string) (string, error) {
	empty := filepath.Join(dir, ".empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		return "", err
	}
	return empty, nil
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

// maxUserFile is the largest /etc/passwd or /etc/group read from an image:
// far above any real one (a distribution's is a few KiB), small enough that
// a hostile image cannot make berthd hold much memory.
const maxUserFile = 4 << 20

// UserFiles reads /etc/passwd and /etc/group inside a root filesystem (see
// ReadImageFile); missing files are empty.
func UserFiles(rootfs string) (passwd, group []byte, err error) {
	if passwd, err = ReadImageFile(rootfs, "/etc/passwd", maxUserFile); err != nil {
		return nil, nil, err
	}
	if group, err = ReadImageFile(rootfs, "/etc/group", maxUserFile); err != nil {
		return nil, nil, err
	}
	return passwd, group, nil
}

// ReadImageFile reads the file name inside root, a container's rootfs or a
// layer, whose content an image chose. Symlinks are resolved inside root, as
// the container would see them (an absolute or "../" one cannot leave it),
// and only a regular file is opened for reading: a FIFO would block berthd
// forever, a device would read the host's (the rootfs is not nodev) or never
// end. It is opened as an O_PATH handle first, checked, then reopened, so no
// device's open runs. A file over limit bytes or not regular is
// InvalidArgument; a missing one is (nil, nil).
func ReadImageFile(root, name string, limit int64) ([]byte, error) {
	handle, err := pathrs.OpenInRoot(root, name)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w: %w", name, err, errdefs.ErrInvalidArgument)
	}
	defer handle.Close()
	if err := checkRegular(handle, name); err != nil {
		return nil, err
	}
	f, err := pathrs.Reopen(handle, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", name, err)
	}
	defer f.Close()
	if err := checkRegular(f, name); err != nil { // the same inode; checked again all the same
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("image file %s is over %d bytes: %w", name, limit, errdefs.ErrInvalidArgument)
	}
	return data, nil
}

// checkRegular fails unless f is a regular file.
func checkRegular(f *os.File, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("image file %s: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("image file %s is a %s, not a regular file: %w", name, fileKind(st.Mode), errdefs.ErrInvalidArgument)
	}
	return nil
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFSOCK:
		return "socket"
	default:
		return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
	}
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
