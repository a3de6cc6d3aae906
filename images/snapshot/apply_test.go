package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type entry struct {
	name, link, body string
	typ              byte
	mode             int64
	xattrs           map[string]string
	uid, gid         int       // 0: the test's own
	mtime            time.Time // zero: a fixed default
}

func tarOf(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)),
			ModTime: time.Unix(1700000000, 0), Uid: os.Getuid(), Gid: os.Getgid(), Format: tar.FormatPAX}
		if e.uid != 0 {
			hdr.Uid, hdr.Gid = e.uid, e.gid
		}
		if !e.mtime.IsZero() {
			hdr.ModTime, hdr.AccessTime = e.mtime, e.mtime
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if e.typ == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		for k, v := range e.xattrs {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func file(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }
func dir(name string) entry        { return entry{name: name, typ: tar.TypeDir} }
func symlink(name, to string) entry {
	return entry{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) entry { return entry{name: name, link: to, typ: tar.TypeLink} }

// sandbox makes parent/layer next to canaries (see makeCanaries); it returns
// the layer dir and a check that nothing outside the layer changed.
func sandbox(t *testing.T) (string, func()) {
	t.Helper()
	parent := t.TempDir()
	layer := filepath.Join(parent, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	c := makeCanaries(t, parent, true)
	return layer, func() {
		t.Helper()
		c.check(t)
	}
}

func apply(t *testing.T, layer string, data []byte) (ApplyStats, error) {
	t.Helper()
	return Apply(context.Background(), layer, bytes.NewReader(data), ApplyOptions{})
}

func TestApplyEntryTypes(t *testing.T) {
	layer, check := sandbox(t)
	data := tarOf(t,
		dir("etc/"),
		file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
		entry{name: "bin/su", body: "elf", typ: tar.TypeReg, mode: 0o4755},
		symlink("bin/sh", "/bin/busybox"),
		hardlink("bin/passwd-copy", "etc/passwd"),
		entry{name: "dev/fifo", typ: tar.TypeFifo, mode: 0o600},
		file("nested/deep/file", "x"),
	)
	stats, err := apply(t, layer, data)
	if err != nil {
		t.Fatal(err)
	}
	check()
	if b, _ := os.ReadFile(filepath.Join(layer, "etc/passwd")); !strings.HasPrefix(string(b), "root:x") {
		t.Fatalf("passwd = %q", b)
	}
	fi, _ := os.Lstat(filepath.Join(layer, "bin/su"))
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Fatalf("su mode = %v, want setuid 0755", fi.Mode())
	}
	if l, _ := os.Readlink(filepath.Join(layer, "bin/sh")); l != "/bin/busybox" {
		t.Fatalf("symlink = %q", l)
	}
	a, _ := os.Stat(filepath.Join(layer, "etc/passwd"))
	b, _ := os.Stat(filepath.Join(layer, "bin/passwd-copy"))
	if !os.SameFile(a, b) {
		t.Fatal("hard link is a copy")
	}
	if fi, _ := os.Lstat(filepath.Join(layer, "dev/fifo")); fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("fifo mode %v", fi.Mode())
	}
	if fi, _ := os.Lstat(filepath.Join(layer, "etc")); !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("dir mtime %v", fi.ModTime())
	}
	if stats.Bytes != int64(len("root:x:0:0::/root:/bin/sh\n")+len("elf")+1) || stats.Inodes < 9 {
		t.Fatalf("stats = %+v", stats)
	}
}

func TestApplyHostileTars(t *testing.T) {
	tests := []struct {
		name    string
		entries []entry
		wantErr bool
		// inside is a path (relative to the layer) that must exist afterwards
		inside string
	}{
		{name: "dotdot", entries: []entry{file("../../canary", "evil")}, inside: "canary"},
		{name: "absolute", entries: []entry{file("/canary", "evil")}, inside: "canary"},
		{name: "dotdot in middle", entries: []entry{file("a/../../../canary", "evil")}, inside: "canary"},
		{name: "symlink parent escape", entries: []entry{symlink("up", "../"), file("up/canary", "evil")}, inside: "canary"},
		{name: "absolute symlink parent loops inside", entries: []entry{symlink("etc", "/etc"), file("etc/evil-berth-test", "evil")}, wantErr: true},
		{name: "absolute symlink parent", entries: []entry{dir("usr/"), symlink("lib", "/usr"), file("lib/evil-berth-test", "evil")}, inside: "usr/evil-berth-test"},
		{name: "write through final symlink", entries: []entry{symlink("f", "../canary"), file("f", "evil")}, inside: "f"},
		{name: "hardlink outside", entries: []entry{hardlink("h", "../canary")}, wantErr: true},
		{name: "hardlink via symlink dir", entries: []entry{symlink("d", "../"), hardlink("h", "d/canary")}, wantErr: true},
		{name: "hardlink to symlink stays a link to the symlink", entries: []entry{symlink("s", "../canary"), hardlink("h", "s")}, inside: "h"},
		{name: "hardlink to missing", entries: []entry{hardlink("h", "nope")}, wantErr: true},
		{name: "file over dir", entries: []entry{dir("d"), file("d/x", "1"), file("d", "now a file")}, inside: "d"},
		{name: "whiteout escape", entries: []entry{file("../.wh.canary", "")}, inside: "canary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			layer, check := sandbox(t)
			_, err := apply(t, layer, tarOf(t, tt.entries...))
			check()
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.inside != "" {
				if _, err := os.Lstat(filepath.Join(layer, tt.inside)); err != nil {
					t.Fatalf("%s not created inside the layer: %v", tt.inside, err)
				}
			}
		})
	}
	if _, err := os.Lstat("/etc/evil-berth-test"); err == nil {
		os.Remove("/etc/evil-berth-test")
		t.Fatal("a layer wrote into the host's /etc")
	}
}

func TestApplyMalformed(t *testing.T) {
	good := tarOf(t, file("a", strings.Repeat("x", 4000)), file("b", "y"))
	for name, data := range map[string][]byte{
		"truncated in body":   good[:1024],
		"truncated in header": good[:100],
		"garbage header":      append(bytes.Repeat([]byte{0xff}, 512), make([]byte, 1024)...),
	} {
		t.Run(name, func(t *testing.T) {
			layer, check := sandbox(t)
			if _, err := apply(t, layer, data); err == nil {
				t.Fatal("malformed tar applied without error")
			}
			check()
		})
	}
}

func TestApplyCancelled(t *testing.T) {
	layer, _ := sandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Apply(ctx, layer, bytes.NewReader(tarOf(t, file("a", "b"))), ApplyOptions{}); err == nil {
		t.Fatal("cancelled Apply succeeded")
	}
}

func TestWhiteoutsAndOpaque(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: whiteouts are char devices, opaque uses trusted xattrs")
	}
	layer, check := sandbox(t)
	_, err := apply(t, layer, tarOf(t, dir("d/"), file("d/.wh..wh..opq", ""), file(".wh.gone", ""), file("keep", "k")))
	if err != nil {
		t.Fatal(err)
	}
	check()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layer, "gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Fatalf("whiteout: %+v, %v", st, err)
	}
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(filepath.Join(layer, "d"), "trusted.overlay.opaque", buf)
	if err != nil || string(buf[:n]) != "y" {
		t.Fatalf("opaque xattr = %q, %v", buf[:n], err)
	}
	if _, err := os.Lstat(filepath.Join(layer, ".wh.gone")); !os.IsNotExist(err) {
		t.Fatal("whiteout marker file kept")
	}
}

// TestOverlaySemantics mounts real overlays of applied layers and checks that
// whiteouts hide files and opaque dirs hide lower content.
func TestOverlaySemantics(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount overlayfs")
	}
	base := t.TempDir()
	lower, upper, mnt := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "mnt")
	for _, d := range []string{lower, upper, mnt} {
		os.Mkdir(d, 0o755)
	}
	if _, err := apply(t, lower, tarOf(t, file("a", "1"), file("b", "2"), dir("d/"), file("d/old", "3"))); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t, upper, tarOf(t, file(".wh.a", ""), dir("d/"), file("d/.wh..wh..opq", ""), file("d/new", "4"))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+upper+":"+lower); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	if _, err := os.Lstat(filepath.Join(mnt, "a")); !os.IsNotExist(err) {
		t.Errorf("whited-out file visible: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "b")); err != nil {
		t.Errorf("lower file hidden: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "d/old")); !os.IsNotExist(err) {
		t.Errorf("opaque dir shows lower content: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "d/new")); err != nil {
		t.Errorf("upper content of opaque dir hidden: %v", err)
	}
}
