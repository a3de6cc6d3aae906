package snapshot

import (
	"archive/tar"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const paxXattrPrefix = "SCHILY.xattr."

// setMetadata applies ownership, xattrs, mode and times without following a
// symlink at target. Directory times wait until the end: entries created
// inside a dir would change them.
func (a *applier) setMetadata(target string, hdr *tar.Header) error {
	if err := unix.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	if err := setXattrs(target, hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return setTimes(target, hdr)
	}
	// chown clears setuid/setgid bits, so the mode comes after it.
	if err := unix.Fchmodat(unix.AT_FDCWD, target, uint32(hdr.Mode&0o7777), 0); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTimes{path: target, hdr: hdr})
		return nil
	}
	return setTimes(target, hdr)
}

func setXattrs(target string, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := strings.TrimPrefix(k, paxXattrPrefix)
		err := unix.Lsetxattr(target, name, []byte(hdr.PAXRecords[k]), 0)
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) && !strings.HasPrefix(name, "security.") {
			// The file system or the kernel refuses this namespace (e.g.
			// user.* on a symlink): the peers skip these too.
			continue
		}
		if err != nil {
			return fmt.Errorf("xattr %s: %w", name, err)
		}
	}
	return nil
}

func setTimes(target string, hdr *tar.Header) error {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finishDirs sets directory times, deepest first, once nothing more is created.
func (a *applier) finishDirs() error {
	sort.SliceStable(a.dirs, func(i, j int) bool {
		return strings.Count(a.dirs[i].path, string(filepath.Separator)) > strings.Count(a.dirs[j].path, string(filepath.Separator))
	})
	for _, d := range a.dirs {
		if err := setTimes(d.path, d.hdr); err != nil {
			return fmt.Errorf("layer entry %q: %w", d.hdr.Name, err)
		}
	}
	return nil
}

// opaque marks rel's directory opaque: overlayfs hides the lower layers' content.
func (a *applier) opaque(rel string) error {
	dir, err := a.resolveParent(rel)
	if err != nil {
		return err
	}
	dir = filepath.Dir(dir)
	return unix.Lsetxattr(dir, a.xattr("opaque"), []byte("y"), 0)
}

// whiteout hides rel's name in the lower layers: a 0/0 char device named after it.
func (a *applier) whiteout(rel string) error {
	target, err := a.resolveParent(rel)
	if err != nil {
		return err
	}
	name := strings.TrimPrefix(filepath.Base(target), whiteoutPrefix)
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("bad whiteout name %q", filepath.Base(target))
	}
	target = filepath.Join(filepath.Dir(target), name)
	if err := a.makeRoom(target, &tar.Header{Typeflag: tar.TypeChar}); err != nil {
		return err
	}
	if err := unix.Mknod(target, unix.S_IFCHR, 0); err != nil {
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
