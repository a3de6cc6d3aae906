package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

const paxXattrPrefix = "SCHILY.xattr."

// setMetadata applies ownership, xattrs, mode and times to name in dirfd
// (rel is its entry name) without following it if it is a symlink: every
// call is relative to dirfd and does not follow name. Directory times wait
// until the end: entries created inside a dir would change them.
func (a *applier) setMetadata(dirfd int, name, rel string, hdr *tar.Header) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if err := unix.Fchownat(dirfd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := setXattrs(dirfd, name, hdr); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		// Linux symlinks have no mode of their own. This is also the case
		// of a hard link to a symlink: a chmod that followed it would
		// change whatever the link points at.
		return setTimes(dirfd, name, hdr)
	case unix.S_IFDIR:
		// chown clears setuid/setgid bits, so the mode comes after it.
		if err := chmodNoFollow(dirfd, name, uint32(hdr.Mode&0o7777)); err != nil {
			return err
		}
		a.dirs = append(a.dirs, dirTimes{rel: rel, dev: st.Dev, ino: st.Ino, hdr: hdr})
		return nil
	default:
		if err := chmodNoFollow(dirfd, name, uint32(hdr.Mode&0o7777)); err != nil {
			return err
		}
		return setTimes(dirfd, name, hdr)
	}
}

// chmodNoFollow changes the mode of name in dirfd unless it is a symlink.
// fchmodat2 (Linux 6.6) takes AT_SYMLINK_NOFOLLOW (and refuses a symlink
// with EOPNOTSUPP); older kernels get chmodViaProc.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	err := unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = chmodViaProc(dirfd, name, mode)
	}
	if err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return nil
}

// chmodViaProc opens name O_PATH|O_NOFOLLOW, leaves a symlink alone, and
// changes anything else through the fd's /proc/self/fd magic link, which
// resolves to that very inode (glibc's lchmod does the same).
func chmodViaProc(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// isOverlayXattr tells the xattrs that steer overlayfs (redirect, metacopy,
// opaque, ...): a layer tar may not set them, only the applier's own
// whiteout and opaque conversion does.
func isOverlayXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

func setXattrs(dirfd int, name string, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) && !isOverlayXattr(strings.TrimPrefix(k, paxXattrPrefix)) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	p := procPath(dirfd, name)
	for _, k := range keys {
		attr := strings.TrimPrefix(k, paxXattrPrefix)
		err := unix.Lsetxattr(p, attr, []byte(hdr.PAXRecords[k]), 0)
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) && !strings.HasPrefix(attr, "security.") {
			// The file system or the kernel refuses this namespace (e.g.
			// user.* on a symlink): the peers skip these too.
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	return nil
}

func setTimes(dirfd int, name string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(dirfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finishDirs sets directory times, deepest first, once nothing more is
// created. A directory that a later entry removed or replaced is skipped.
func (a *applier) finishDirs() error {
	depth := func(rel string) int {
		if rel == "" {
			return -1
		}
		return strings.Count(rel, "/")
	}
	sort.SliceStable(a.dirs, func(i, j int) bool { return depth(a.dirs[i].rel) > depth(a.dirs[j].rel) })
	for _, d := range a.dirs {
		if err := a.setDirTimes(d); err != nil {
			return fmt.Errorf("layer entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

func (a *applier) setDirTimes(d dirTimes) error {
	dirfd, name := a.rootFD, "."
	if d.rel != "" {
		var err error
		dirfd, name, err = a.openParent(d.rel, false)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, errdefs.ErrInvalidArgument) {
			return nil // a later entry took the path away
		}
		if err != nil {
			return err
		}
		defer a.closeDir(dirfd)
	}
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) || err == nil && (st.Dev != d.dev || st.Ino != d.ino) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	return setTimes(dirfd, name, d.hdr)
}

// opaque marks rel's directory opaque: overlayfs hides the lower layers' content.
func (a *applier) opaque(rel string) error {
	dirfd, err := a.openDir(path.Dir(rel), true)
	if err != nil {
		return err
	}
	defer a.closeDir(dirfd)
	if err := unix.Lsetxattr(procPath(dirfd, "."), a.xattr("opaque"), []byte("y"), 0); err != nil {
		return fmt.Errorf("opaque xattr: %w", err)
	}
	return nil
}

// whiteout hides rel's name in the lower layers: a 0/0 char device named after it.
func (a *applier) whiteout(rel string) error {
	dirfd, marker, err := a.openParent(rel, true)
	if err != nil {
		return err
	}
	defer a.closeDir(dirfd)
	name := strings.TrimPrefix(marker, whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("bad whiteout name %q: %w", marker, errdefs.ErrInvalidArgument)
	}
	if err := makeRoom(dirfd, name, false); err != nil {
		return err
	}
	if err := unix.Mknodat(dirfd, name, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout: %w", err)
	}
	a.stats.Inodes++
	return nil
}

func (a *applier) xattr(name string) string {
	if a.opts.UserXattr {
		return "user.overlay." + name
	}
	return "trusted.overlay." + name
}
