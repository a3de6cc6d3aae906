package volumes

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// maxLinks is how many symlinks a sub path may pass through, as the kernel's
// own limit on a path walk (ELOOP).
const maxLinks = 40

// ResolveImageSubPath resolves sub, a relative path inside root (an image
// mount's read-only tree), to a host path under root. Symlinks are followed
// as the image means them: an absolute one from root, a relative one from its
// own dir; one that climbs above root is an escape and refused, never clamped
// (the kubelet asked for a path the image does not have). A sub path that is
// absolute, has a ".." component, or does not exist is InvalidArgument.
// The tree must not change while it is resolved: it is read-only.
func ResolveImageSubPath(root, sub string) (string, error) {
	if sub == "" {
		return root, nil
	}
	if path.IsAbs(sub) {
		return "", fmt.Errorf("image sub path %q must be relative: %w", sub, errdefs.ErrInvalidArgument)
	}
	pending := strings.Split(sub, "/")
	for _, c := range pending {
		if c == ".." {
			return "", fmt.Errorf("image sub path %q must not have \"..\": %w", sub, errdefs.ErrInvalidArgument)
		}
	}
	var resolved []string // components under root, none a symlink
	links := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(resolved) == 0 {
				return "", fmt.Errorf("image sub path %q leaves the image through a symlink: %w", sub, errdefs.ErrInvalidArgument)
			}
			resolved = resolved[:len(resolved)-1]
			continue
		}
		p := filepath.Join(append([]string{root}, append(resolved, c)...)...)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return "", fmt.Errorf("image sub path %q does not exist in the image: %w", sub, errdefs.ErrInvalidArgument)
		}
		if err != nil {
			return "", fmt.Errorf("image sub path %q: %w", sub, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = append(resolved, c)
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("image sub path %q passes too many symlinks: %w", sub, errdefs.ErrInvalidArgument)
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", fmt.Errorf("image sub path %q: %w", sub, err)
		}
		if path.IsAbs(target) {
			resolved = nil
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return filepath.Join(append([]string{root}, resolved...)...), nil
}
