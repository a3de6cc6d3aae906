package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Layers are an overlay rootfs's dirs: the read-only layers (top first) and
// the writable upper and work dirs (empty for a read-only view), and the
// SELinux label its files get ("" without SELinux).
type Layers struct {
	Lower       []string
	Upper, Work string
	MountLabel  string
}

// MountRootfsMapped mounts a container's overlay rootfs at target for a pod
// with its own user namespace (pinned at userns): each layer is seen through
// an idmapped mount, so that the image's files are owned by the pod's IDs (the
// image's root is the pod's root), and the upper dir belongs to the pod's root
// (host uid, gid), so that what the container writes is stored with its host
// IDs. The idmapped layer mounts are made in a dir beside target and
// detached once the overlay holds them.
func MountRootfsMapped(l Layers, target, userns string, uid, gid uint32) (retErr error) {
	if l.Upper != "" {
		if err := os.Chown(l.Upper, int(uid), int(gid)); err != nil {
			return fmt.Errorf("give the upper dir to the pod's root: %w", err)
		}
	}
	ns, err := os.Open(userns)
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := os.MkdirAll(target, 0o755); err != nil { // first: its parents are made 0755
		return err
	}
	dir := target + ".layers"
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	var mapped []string
	defer func() {
		for _, m := range mapped {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && retErr == nil {
				retErr = fmt.Errorf("detach idmapped layer %s: %w", m, err)
			}
		}
		if err := os.RemoveAll(dir); err != nil && retErr == nil {
			retErr = err
		}
	}()
	names := make([]string, len(l.Lower))
	for i, lower := range l.Lower {
		names[i] = strconv.Itoa(i)
		at := filepath.Join(dir, names[i])
		if err := idmapMount(lower, at, int(ns.Fd())); err != nil {
			return err
		}
		mapped = append(mapped, at)
	}
	opts := "lowerdir=" + strings.Join(names, ":")
	if l.Upper != "" {
		opts += ",upperdir=" + l.Upper + ",workdir=" + l.Work
	}
	opts = WithMountLabel(opts+",index=off", l.MountLabel)
	err = inDir(dir, func() error { return unix.Mount("overlay", target, "overlay", 0, opts) })
	if err != nil {
		return fmt.Errorf("mount idmapped rootfs at %s: %w", target, err)
	}
	return nil
}

// idmapMount mounts src at target (a new dir) through the user namespace
// usernsFD's ID mapping.
func idmapMount(src, target string, usernsFD int) error {
	fd, err := idmappedClone(src, usernsFD)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := os.Mkdir(target, 0o700); err != nil {
		return err
	}
	if err := unix.MoveMount(fd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach idmapped layer %s: %w", src, err)
	}
	return nil
}

// idmappedClone returns a detached mount of src seen through usernsFD's ID
// mapping.
func idmappedClone(src string, usernsFD int) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("clone %s: %w", src, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usernsFD)}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("idmap %s: %w", src, err)
	}
	return fd, nil
}

// IDMapSupported says whether dir's filesystem can be idmapped through the
// user namespace at userns (the kernel and the filesystem both must support
// it): nil if so.
func IDMapSupported(dir, userns string) error {
	ns, err := os.Open(userns)
	if err != nil {
		return err
	}
	defer ns.Close()
	fd, err := idmappedClone(dir, int(ns.Fd()))
	if err == nil {
		unix.Close(fd)
	}
	return err
}
