package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
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
	rootFD, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ApplyStats{}, fmt.Errorf("open layer dir %s: %w", dir, err)
	}
	defer unix.Close(rootFD)
	a := &applier{rootFD: rootFD, opts: opts}
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
		if err := a.entry(hdr, ctxReader{ctx, tr}); err != nil {
			return a.stats, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
	}
	return a.stats, a.finishDirs()
}

// applier works on the layer through rootFD only: every entry is reached
// from it by openDir and touched relative to its parent's fd.
type applier struct {
	rootFD int
	opts   ApplyOptions
	stats  ApplyStats
	dirs   []dirTimes // set after all entries, deepest first
}

// dirTimes is a directory whose times wait until the end, identified by its
// entry name and its inode (a later entry may have replaced it).
type dirTimes struct {
	rel      string
	dev, ino uint64
	hdr      *tar.Header
}

// cleanName maps an entry name to a clean path relative to the root; "" is
// the root itself.
func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	rel := cleanName(hdr.Name)
	if rel == "" {
		return a.rootEntry(hdr)
	}
	base := path.Base(rel)
	if base == opaqueMarker {
		return a.opaque(rel)
	}
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(rel)
	}
	dirfd, name, err := a.openParent(rel, true)
	if err != nil {
		return err
	}
	defer a.closeDir(dirfd)
	if err := makeRoom(dirfd, name, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	if err := a.create(dirfd, name, hdr, r); err != nil {
		return err
	}
	a.stats.Inodes++
	return a.setMetadata(dirfd, name, rel, hdr)
}

// rootEntry applies "./" metadata to the layer root itself.
func (a *applier) rootEntry(hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeDir {
		return fmt.Errorf("the layer root must be a directory: %w", errdefs.ErrInvalidArgument)
	}
	return a.setMetadata(a.rootFD, ".", "", hdr)
}

// makeRoom removes what stands at name in dirfd, unless both it and the new
// entry are directories (a later entry replaces an earlier one; a dir keeps
// its content). A symlink there is removed, never followed.
func makeRoom(dirfd int, name string, isDir bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", name, err)
	}
	if isDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	return removeAt(dirfd, name)
}

func (a *applier) create(dirfd int, name string, hdr *tar.Header, r io.Reader) error {
	var err error
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err = unix.Mkdirat(dirfd, name, 0o755); errors.Is(err, unix.EEXIST) {
			err = nil // makeRoom kept a directory
		}
	case tar.TypeReg: // the reader reports old-style TypeRegA entries as TypeReg
		return a.writeFile(dirfd, name, hdr, r)
	case tar.TypeSymlink:
		err = unix.Symlinkat(hdr.Linkname, dirfd, name)
	case tar.TypeLink:
		return a.hardlink(dirfd, name, hdr.Linkname)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = mknod(dirfd, name, hdr)
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return nil
}

func (a *applier) writeFile(dirfd int, name string, hdr *tar.Header, r io.Reader) error {
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	buf := copyBuffers.Get().(*[]byte)
	n, err := copySparse(f, io.LimitReader(r, hdr.Size), *buf)
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

// zeros is what a chunk of a file's content is compared with.
var zeros [256 << 10]byte

// copySparse copies r to f through buf, making holes of the chunks that are
// all zeros: a sparse entry (GNU sparse, in PAX) declares any size for a few
// bytes of tar, and a compressed run of zeros costs as little, so written
// out either could fill the disk from a tiny layer. The content reads the
// same.
func copySparse(f *os.File, r io.Reader, buf []byte) (int64, error) {
	var n int64
	hole := false
	for {
		m, err := io.ReadFull(r, buf)
		if m > 0 {
			chunk := buf[:m]
			var werr error
			if hole = bytes.Equal(chunk, zeros[:m]); hole {
				_, werr = f.Seek(int64(m), io.SeekCurrent)
			} else {
				_, werr = f.Write(chunk)
			}
			if werr != nil {
				return n, werr
			}
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if hole { // a hole at the end is a size, not a write
		return n, f.Truncate(n)
	}
	return n, nil
}

// ctxReader stops reading an entry's content once ctx ends: one entry can
// declare terabytes (see copySparse), and Apply checks ctx only between
// entries.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// hardlink links name to an entry already in the layer. The target's parent
// is resolved inside the root like any entry's; its last component is
// linked as is: linkat(2) without AT_SYMLINK_FOLLOW links a symlink itself,
// and the new name then is that symlink (setMetadata treats it as one).
func (a *applier) hardlink(dirfd int, name, linkname string) error {
	rel := cleanName(linkname)
	if rel == "" {
		return fmt.Errorf("hard link to the layer root: %w", errdefs.ErrInvalidArgument)
	}
	srcfd, src, err := a.openParent(rel, false)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	defer a.closeDir(srcfd)
	var st unix.Stat_t
	if err := unix.Fstatat(srcfd, src, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hard link target %q is a directory: %w", linkname, errdefs.ErrInvalidArgument)
	}
	if err := unix.Linkat(srcfd, src, dirfd, name, 0); err != nil {
		return fmt.Errorf("hard link to %q: %w", linkname, err)
	}
	return nil
}

func mknod(dirfd int, name string, hdr *tar.Header) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	return unix.Mknodat(dirfd, name, mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
}
