package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is every entry's mtime: fixed, so digests are reproducible.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// entry is one tar entry of a hand-made layer.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	// For hostile layers: owner, time, xattrs and device numbers, when set.
	uid, gid     int
	mtime        time.Time
	xattrs       map[string]string
	major, minor int64
}

func file(name, body string, mode int64) entry {
	return entry{name: name, body: body, typ: tar.TypeReg, mode: mode}
}
func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeLink, mode: 0o644}
}

func writeEntries(tw *tar.Writer, entries []entry) error {
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, ModTime: epoch, Format: tar.FormatPAX,
			Uid: e.uid, Gid: e.gid, Devmajor: e.major, Devminor: e.minor}
		if !e.mtime.IsZero() {
			hdr.ModTime = e.mtime
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			return err
		}
	}
	return nil
}

// tarOfEntries builds an uncompressed layer tar.
func tarOfEntries(entries ...entry) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeEntries(tw, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), tw.Close()
}

// tarOfDir builds an uncompressed layer tar of a staged root: sorted, owned
// by root, fixed times, hard links kept.
func tarOfDir(root string) ([]byte, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[uint64]string{}
	for _, p := range paths {
		if err := addPath(tw, root, p, seen); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return buf.Bytes(), tw.Close()
}

func addPath(tw *tar.Writer, root, p string, seen map[uint64]string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(root, p)
	link := ""
	if fi.Mode()&fs.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return err
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return err
	}
	hdr.Name, hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = rel, epoch, time.Time{}, time.Time{}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname, hdr.Format = 0, 0, "", "", tar.FormatPAX
	if fi.IsDir() {
		hdr.Name += "/"
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().IsRegular() && st.Nlink > 1 {
		if first, ok := seen[st.Ino]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
		} else {
			seen[st.Ino] = rel
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(tw, f)
	return err
}

// compressedLayer wraps an uncompressed tar as a layer: "gzip", "zstd" or "none".
func compressedLayer(data []byte, how string, oci bool) (v1.Layer, error) {
	opener := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	switch how {
	case "zstd":
		return tarball.LayerFromOpener(opener, tarball.WithCompression(compression.ZStd), tarball.WithMediaType(types.OCILayerZStd))
	case "none":
		mt := types.OCIUncompressedLayer
		if !oci {
			mt = types.DockerUncompressedLayer
		}
		return static.NewLayer(data, mt), nil
	default:
		if oci {
			return tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCILayer))
		}
		return tarball.LayerFromOpener(opener)
	}
}
