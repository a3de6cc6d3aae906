package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxSymlinks bounds the symlinks expanded while resolving one path, as the
// kernel's own limit (MAXSYMLINKS) does: a loop fails instead of spinning.
const maxSymlinks = 40

// openDir opens the directory rel (clean, relative to the root; "" or "."
// is the root) as an O_PATH fd. It walks one component at a time, each opened
// with O_NOFOLLOW relative to its parent's fd; a symlink met on the way is
// read and its target walked as if the root were "/" (an absolute target
// restarts at the root, ".." stops there), so the walk never leaves the root
// whatever the links say. With create, missing directories are made (0755).
// The caller releases the fd with closeDir.
func (a *applier) openDir(rel string, create bool) (int, error) {
	stack := []int{a.rootFD} // the walked directories; stack[0] is not ours to close
	defer func() {
		for _, fd := range stack[1:] {
			unix.Close(fd)
		}
	}()
	todo := strings.Split(rel, "/")
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				unix.Close(stack[len(stack)-1])
				stack = stack[:len(stack)-1]
			}
			continue
		}
		fd, link, err := a.openChild(stack[len(stack)-1], name, create)
		if err != nil {
			return -1, err
		}
		if fd >= 0 {
			stack = append(stack, fd)
			continue
		}
		if links++; links > maxSymlinks {
			return -1, fmt.Errorf("resolve %q: too many levels of symbolic links: %w", rel, errdefs.ErrInvalidArgument)
		}
		if strings.HasPrefix(link, "/") {
			for _, fd := range stack[1:] {
				unix.Close(fd)
			}
			stack = stack[:1]
		}
		todo = append(strings.Split(link, "/"), todo...)
	}
	top := stack[len(stack)-1]
	if len(stack) > 1 {
		stack = stack[:len(stack)-1] // the caller owns it now
	}
	return top, nil
}

// openChild opens the directory name in dirfd without following it. When
// name is a symlink it returns fd -1 and the link's target instead.
func (a *applier) openChild(dirfd int, name string, create bool) (fd int, link string, err error) {
	const flags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_DIRECTORY | unix.O_CLOEXEC
	fd, err = unix.Openat(dirfd, name, flags, 0)
	if errors.Is(err, unix.ENOENT) && create {
		if err = unix.Mkdirat(dirfd, name, 0o755); err != nil {
			return -1, "", fmt.Errorf("mkdir %s: %w", name, err)
		}
		a.stats.Inodes++
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	if err == nil {
		return fd, "", nil
	}
	if !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		return -1, "", fmt.Errorf("open %s: %w", name, err)
	}
	link, err = readlinkAt(dirfd, name)
	if errors.Is(err, unix.EINVAL) {
		return -1, "", fmt.Errorf("%s is not a directory: %w", name, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return -1, "", fmt.Errorf("readlink %s: %w", name, err)
	}
	return -1, link, nil
}

func readlinkAt(dirfd int, name string) (string, error) {
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(dirfd, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// closeDir releases a directory fd from openDir.
func (a *applier) closeDir(fd int) {
	if fd != a.rootFD {
		unix.Close(fd)
	}
}

// openParent opens the directory of the entry rel (non-empty, clean) and
// returns it with the entry's own name, which the caller must never follow.
func (a *applier) openParent(rel string, create bool) (int, string, error) {
	dirfd, err := a.openDir(path.Dir(rel), create)
	if err != nil {
		return -1, "", err
	}
	return dirfd, path.Base(rel), nil
}

// removeAt removes name in dirfd, with its content when it is a directory.
// It never follows a symlink: links are unlinked, directories are opened
// with O_NOFOLLOW relative to their parent's fd.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	for i := 0; err == nil && i < len(names); i++ {
		err = removeAt(fd, names[i])
	}
	d.Close()
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// procPath names name inside the directory dirfd through /proc/self/fd, for
// the calls that have no *at form (the l*xattr family): the kernel resolves
// the fd's magic link to exactly that directory, and an l* call does not
// follow name itself.
func procPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}
