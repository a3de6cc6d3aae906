package snapshot

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// ApplyOptions tune how a layer is unpacked.
type ApplyOptions struct {
	// UserXattr writes user.overlay.* instead of trusted.overlay.* xattrs,
	// for overlay mounts with the userxattr option.
	UserXattr bool
}

// ApplyStats describe what Apply wrote.
type ApplyStats struct {
	Bytes  int64 // bytes of regular file content
	Inodes int64 // entries created
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Apply unpacks the uncompressed layer tar r into dir (see the package doc for
// the contract and the safety rules).
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (ApplyStats, error) {
	a := &applier{root: dir, opts: opts}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return a.stats, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.stats, fmt.Errorf("read layer tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.stats, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	return a.stats, a.finishDirs()
}

type applier struct {
	root  string
	opts  ApplyOptions
	stats ApplyStats
	dirs  []dirTimes // set after all entries, deepest first
}

type dirTimes struct {
	path string
	hdr  *tar.Header
}

// cleanName maps an entry name to a clean path relative to the root; "" is
// the root itself.
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// resolveParent returns the on-disk path of rel's parent, resolved inside the
// root, creating missing directories; and the path of rel itself under it.
func (a *applier) resolveParent(rel string) (string, error) {
	parent, err := securejoin.SecureJoin(a.root, path.Dir(rel))
	if err != nil {
		return "", err
	}
	if err := a.mkdirAll(parent); err != nil {
		return "", err
	}
	return filepath.Join(parent, path.Base(rel)), nil
}

// mkdirAll creates missing dirs between the root and p (p is inside the root
// and its existing components are real directories, as SecureJoin resolved it).
func (a *applier) mkdirAll(p string) error {
	fi, err := os.Lstat(p)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := a.mkdirAll(filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	a.stats.Inodes++
	return nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	rel := cleanName(hdr.Name)
	base := path.Base(rel)
	if rel == "" {
		return a.rootEntry(hdr)
	}
	if base == opaqueMarker {
		return a.opaque(rel)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(rel)
	}
	target, err := a.resolveParent(rel)
	if err != nil {
		return err
	}
	if err := a.makeRoom(target, hdr); err != nil {
		return err
	}
	if err := a.create(target, hdr, r); err != nil {
		return err
	}
	a.stats.Inodes++
	return a.setMetadata(target, hdr)
}

// rootEntry applies "./" metadata to the layer root itself.
func (a *applier) rootEntry(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return errors.New("the layer root must be a directory")
	}
	return a.setMetadata(a.root, hdr)
}

// makeRoom removes what stands where the entry goes, unless both are dirs (a
// later entry replaces an earlier one; a dir keeps its content).
func (a *applier) makeRoom(target string, hdr *tar.Header) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() && hdr.Typeflag == tar.TypeDir {
		return nil
	}
	return os.RemoveAll(target)
}

func (a *applier) create(target string, hdr *tar.Header, r io.Reader) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	case tar.TypeReg: // the reader reports old-style TypeRegA entries as TypeReg
		return a.writeFile(target, hdr, r)
	case tar.TypeSymlink:
		return os.Symlink(hdr.Linkname, target)
	case tar.TypeLink:
		return a.hardlink(target, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return mknod(target, hdr)
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
}

func (a *applier) writeFile(target string, hdr *tar.Header, r io.Reader) error {
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	buf := copyBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(f, io.LimitReader(r, hdr.Size), *buf)
	copyBuffers.Put(buf)
	a.stats.Bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != hdr.Size {
		err = fmt.Errorf("short file content: %d of %d bytes", n, hdr.Size)
	}
	return err
}

// hardlink links target to an entry already in the layer. The link's parent
// is resolved inside the root; its last component is linked as is (link(2)
// does not follow a symlink there).
func (a *applier) hardlink(target, linkname string) error {
	rel := cleanName(linkname)
	if rel == "" {
		return errors.New("hard link to the layer root")
	}
	parent, err := securejoin.SecureJoin(a.root, path.Dir(rel))
	if err != nil {
		return err
	}
	src := filepath.Join(parent, path.Base(rel))
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("hard link target %q is a directory", linkname)
	}
	return os.Link(src, target)
}

func mknod(target string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	return unix.Mknod(target, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
}
