package snapshot

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root: chown, trusted xattrs, device nodes")
	}
}

// TestApplyIssue17 is the reported escape: a symlink to a host file and a
// hard link to that symlink whose header says 04777 made the host file
// -rwsrwxrwx (the chmod followed the hard-linked symlink).
func TestApplyIssue17(t *testing.T) {
	requireRoot(t)
	layer, check := sandbox(t)
	out := filepath.Dir(layer)
	_, err := apply(t, layer, tarOf(t,
		symlink("s", filepath.Join(out, "canary")),
		entry{name: "h", link: "s", typ: tar.TypeLink, mode: 0o4777},
	))
	check()
	if err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(layer, "h")); err != nil || l != filepath.Join(out, "canary") {
		t.Fatalf("h is not the hard-linked symlink: %q, %v", l, err)
	}
}

// hostileCase is a layer tar built against out, the directory that holds
// the layer root ("layer") and the canaries (see makeCanaries).
type hostileCase struct {
	name    string
	entries func(out string) []entry
	wantErr bool
	// inside must exist in the layer afterwards; "@" stands for out
	// without its leading "/" (where an absolute name lands in the root).
	inside string
}

func abs(out, name string) string     { return filepath.Join(out, name) }
func withMode(e entry, m int64) entry { e.mode = m; return e }

// tamper sets everything a header can change on the entry's inode.
func tamper(e entry) entry {
	e.mode, e.uid, e.gid, e.mtime = 0o6777, 4242, 4242, time.Unix(1, 0)
	e.xattrs = map[string]string{"user.evil": "1", "trusted.evil": "1", "security.evil": "1"}
	return e
}

// hostileCases are the escapes tried by TestApplyHostileTarsKeepOutside and
// seeded into FuzzApply.
var hostileCases = []hostileCase{
	// Hard links to symlinks (issue 17; containerd HardlinkSymlinkChmod,
	// moby TestUntarHardlinkToSymlink).
	{name: "hardlink 04777 to absolute symlink", inside: "h", entries: func(out string) []entry {
		return []entry{symlink("s", abs(out, "canary")), withMode(hardlink("h", "s"), 0o4777)}
	}},
	{name: "hardlink to relative symlink, all metadata", inside: "h", entries: func(out string) []entry {
		return []entry{symlink("s", "../canary"), tamper(hardlink("h", "s"))}
	}},
	{name: "hardlink to symlink to outside dir", inside: "h", entries: func(out string) []entry {
		return []entry{symlink("s", abs(out, "layer-evil")), tamper(hardlink("h", "s"))}
	}},
	{name: "hardlink to symlink chain", inside: "h", entries: func(out string) []entry {
		return []entry{symlink("s1", abs(out, "canarylink")), symlink("s2", "s1"), tamper(hardlink("h", "s2"))}
	}},
	{name: "hardlink chain to symlink", inside: "h2", entries: func(out string) []entry {
		return []entry{symlink("s", abs(out, "canary")), tamper(hardlink("h1", "s")), tamper(hardlink("h2", "h1"))}
	}},
	{name: "hardlink to symlink named by outside path", inside: "sketchylink", entries: func(out string) []entry {
		return []entry{symlink(abs(out, "canary-ep"), abs(out, "canary")), tamper(hardlink("sketchylink", abs(out, "canary-ep")))}
	}},
	{name: "hardlink to symlink before its target", inside: "@/canary", entries: func(out string) []entry {
		return []entry{symlink("l", abs(out, "canary")), hardlink("l-dup", "l"), file(abs(out, "canary"), "after")}
	}},
	{name: "hardlink to symlink to later file", inside: "regfile", entries: func(out string) []entry {
		return []entry{symlink("symlink1", "regfile"), hardlink("symlink2", "symlink1"), file("regfile", "")}
	}},
	// Names with "..", absolute names (moby TestUntarInvalidFilenames).
	{name: "dotdot", inside: "canary", entries: func(string) []entry { return []entry{tamper(file("../canary", "evil"))} }},
	{name: "deep dotdot", inside: "canary", entries: func(string) []entry { return []entry{file("../../../../canary", "evil")} }},
	{name: "dotdot in the middle", inside: "canary", entries: func(string) []entry { return []entry{file("a/../../../canary", "evil")} }},
	{name: "slash dotdot", inside: "canary", entries: func(string) []entry { return []entry{file("/../canary", "evil")} }},
	{name: "absolute name", inside: "@/canary", entries: func(out string) []entry { return []entry{tamper(file(abs(out, "canary"), "evil"))} }},
	{name: "dotdot dir entry", inside: "layer-evil", entries: func(string) []entry { return []entry{tamper(dir("../layer-evil/"))} }},
	// Hard links out of the root (moby TestUntarInvalidHardlink,
	// TestUntarSiblingPrefixContained; containerd HardlinkDirect*).
	{name: "hardlink dotdot", wantErr: true, entries: func(string) []entry { return []entry{hardlink("h", "../canary")} }},
	{name: "hardlink slash dotdot", wantErr: true, entries: func(string) []entry { return []entry{hardlink("h", "/../canary")} }},
	{name: "hardlink absolute", wantErr: true, entries: func(out string) []entry { return []entry{hardlink("h", abs(out, "canary"))} }},
	{name: "hardlink to prefix sibling", wantErr: true, entries: func(string) []entry { return []entry{hardlink("grab", "../layer-evil/secret")} }},
	{name: "hardlink to outside dir", wantErr: true, entries: func(string) []entry {
		return []entry{hardlink("loophole", "../layer-evil"), file("loophole/file", "evil")}
	}},
	{name: "hardlink via relative symlinked dir", wantErr: true, entries: func(string) []entry {
		return []entry{symlink("d", "../"), hardlink("h", "d/canary")}
	}},
	{name: "hardlink via absolute symlinked dir", wantErr: true, entries: func(out string) []entry {
		return []entry{symlink("d", out), hardlink("h", "d/canary")}
	}},
	{name: "hardlink to the root", wantErr: true, entries: func(string) []entry { return []entry{hardlink("h", "./")} }},
	// Symlinked parents (containerd TestBreakouts Symlink*, moby
	// TestUntarInvalidSymlink, TestUntarSymlinkBreakout).
	{name: "relative symlinked parent", inside: "canary", entries: func(string) []entry {
		return []entry{symlink("up", "../"), tamper(file("up/canary", "evil"))}
	}},
	{name: "absolute symlinked parent", inside: "@/layer-evil/secret", entries: func(out string) []entry {
		return []entry{symlink("d", abs(out, "layer-evil")), tamper(file("d/secret", "evil"))}
	}},
	{name: "symlink up and out", inside: "layer-evil/secret", entries: func(string) []entry {
		return []entry{dir("dummy/"), symlink("l", "/dummy/../../layer-evil"), file("l/secret", "evil")}
	}},
	{name: "symlink multiple absolute", inside: "@/layer-evil/secret", entries: func(out string) []entry {
		return []entry{dir("dummy/"), symlink("dummy/etc", abs(out, "layer-evil")), symlink("l", "/dummy/etc"), file("l/secret", "evil")}
	}},
	{name: "symlink multiple relative", inside: "@/layer-evil/secret", entries: func(out string) []entry {
		return []entry{dir("dummy/"), symlink("dummy/etc", abs(out, "layer-evil")), symlink("l", "./dummy/etc"), file("l/secret", "evil")}
	}},
	{name: "symlink long relative", inside: "layer-evil/secret", entries: func(string) []entry {
		return []entry{symlink("l", "../../../../../../../layer-evil"), file("l/secret", "evil")}
	}},
	{name: "two-hop symlink chain", inside: "layer-evil/secret", entries: func(string) []entry {
		return []entry{dir("inner/"), symlink("inner/go_up", ".."), symlink("inner/go_up/escape", "../layer-evil"), file("inner/go_up/escape/secret", "evil")}
	}},
	{name: "nested loophole", inside: "layer-evil/newdir/newfile", entries: func(string) []entry {
		return []entry{symlink("dir/loophole", "../../layer-evil"), file("dir/loophole/newdir/newfile", "evil")}
	}},
	{name: "symlink named dotdot", wantErr: true, entries: func(out string) []entry {
		return []entry{symlink("..", out), file("etc/passwd", "inside")}
	}},
	{name: "symlink loop", wantErr: true, entries: func(string) []entry {
		return []entry{symlink("a", "b"), symlink("b", "a"), file("a/x", "loop")}
	}},
	// The last component is replaced, never followed.
	{name: "file over symlink", inside: "f", entries: func(string) []entry {
		return []entry{symlink("f", "../canary"), tamper(file("f", "evil"))}
	}},
	{name: "fifo over symlink", inside: "f", entries: func(out string) []entry {
		return []entry{symlink("f", abs(out, "canary")), tamper(entry{name: "f", typ: tar.TypeFifo})}
	}},
	{name: "device over symlink", inside: "f", entries: func(out string) []entry {
		return []entry{symlink("f", abs(out, "canary")), entry{name: "f", typ: tar.TypeChar, mode: 0o6666}}
	}},
	{name: "dir over symlink", inside: "d", entries: func(out string) []entry {
		return []entry{symlink("d", abs(out, "layer-evil")), tamper(dir("d/"))}
	}},
	{name: "dot dir over symlink", inside: "d", entries: func(out string) []entry {
		return []entry{symlink("d", abs(out, "layer-evil")), tamper(dir("d/."))}
	}},
	{name: "symlink over dir and back", inside: "@/layer-evil/secret", entries: func(out string) []entry {
		return []entry{symlink("d", abs(out, "layer-evil")), dir("d/"), file("d/x", "1"), symlink("d", abs(out, "layer-evil")), tamper(file("d/secret", "evil"))}
	}},
	{name: "file over dir holding a symlink", inside: "d", entries: func(out string) []entry {
		return []entry{dir("d/"), symlink("d/l", abs(out, "layer-evil")), file("d", "now a file")}
	}},
	// Whiteouts and opaque markers (containerd Whiteout*).
	{name: "whiteout under symlinked dir", inside: "@/layer-evil/secret", entries: func(out string) []entry {
		return []entry{symlink("l", abs(out, "layer-evil")), file("l/.wh.secret", "")}
	}},
	{name: "whiteout of a symlink", inside: "l", entries: func(out string) []entry {
		return []entry{symlink("l", abs(out, "layer-evil")), file(".wh.l", "")}
	}},
	{name: "whiteout escape", inside: "canary", entries: func(string) []entry { return []entry{file("../.wh.canary", "")} }},
	{name: "whiteout dead symlink parent", inside: "dne/etc", entries: func(string) []entry {
		return []entry{symlink("localetc", "/dne"), file("localetc/.wh.etc", "")}
	}},
	{name: "whiteout dotdot name", wantErr: true, entries: func(string) []entry { return []entry{file(".wh...", "")} }},
	{name: "whiteout dot name", wantErr: true, entries: func(string) []entry { return []entry{file("etc/.wh..", "")} }},
	{name: "opaque under absolute symlinked dir", inside: "@/layer-evil", entries: func(out string) []entry {
		return []entry{symlink("l", abs(out, "layer-evil")), file("l/.wh..wh..opq", "")}
	}},
	{name: "opaque under relative symlinked dir", inside: "layer-evil", entries: func(string) []entry {
		return []entry{symlink("l", "../layer-evil"), file("l/.wh..wh..opq", "")}
	}},
	{name: "opaque at the root", inside: ".", entries: func(string) []entry { return []entry{file("../.wh..wh..opq", "")} }},
	// The root entry itself.
	{name: "root entry", inside: ".", entries: func(string) []entry { return []entry{tamper(dir("./"))} }},
	{name: "root entry as dotdot", inside: ".", entries: func(string) []entry { return []entry{tamper(dir("../"))} }},
	{name: "root entry as slash", inside: ".", entries: func(string) []entry { return []entry{tamper(dir("/"))} }},
	{name: "root entry as symlink", wantErr: true, entries: func(out string) []entry { return []entry{symlink(".", out)} }},
	// Overlay xattrs from the tar are dropped, never applied.
	{name: "overlay xattrs", inside: "d", entries: func(string) []entry {
		return []entry{{name: "d/", typ: tar.TypeDir, xattrs: map[string]string{"trusted.overlay.redirect": "/etc", "user.overlay.opaque": "y"}}}
	}},
}

// TestApplyHostileTarsKeepOutside applies every hostile case next to
// canaries and checks that none of them changed in any way.
func TestApplyHostileTarsKeepOutside(t *testing.T) {
	requireRoot(t)
	for _, tc := range hostileCases {
		t.Run(tc.name, func(t *testing.T) {
			layer, check := sandbox(t)
			out := filepath.Dir(layer)
			_, err := apply(t, layer, tarOf(t, tc.entries(out)...))
			check()
			if tc.wantErr != (err != nil) {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.inside != "" {
				inside := strings.ReplaceAll(tc.inside, "@", strings.TrimPrefix(out, "/"))
				if _, err := os.Lstat(filepath.Join(layer, inside)); err != nil {
					t.Fatalf("%s not created inside the layer: %v", inside, err)
				}
			}
		})
	}
}

func TestApplyHardlinkToSymlinkKeepsItALink(t *testing.T) {
	requireRoot(t)
	layer, check := sandbox(t)
	out := filepath.Dir(layer)
	e := hardlink("h", "s")
	e.mode, e.uid, e.gid, e.mtime = 0o4777, 4242, 4343, time.Unix(1000, 0)
	if _, err := apply(t, layer, tarOf(t, symlink("s", filepath.Join(out, "canary")), e)); err != nil {
		t.Fatal(err)
	}
	check()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layer, "h"), &st); err != nil {
		t.Fatal(err)
	}
	// Owner and times land on the symlink itself (shared with s); the mode
	// is a symlink's.
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Uid != 4242 || st.Gid != 4343 || st.Mtim.Sec != 1000 || st.Nlink != 2 {
		t.Fatalf("h: %+v", st)
	}
}

func TestApplyDropsOverlayXattrs(t *testing.T) {
	requireRoot(t)
	layer, check := sandbox(t)
	x := map[string]string{
		"trusted.overlay.redirect": "/etc", "trusted.overlay.metacopy": "", "trusted.overlay.opaque": "y",
		"trusted.overlay.overlay.opaque": "y", "user.overlay.opaque": "y", "user.overlay.redirect": "/x",
		"user.keep": "1", "trusted.keep": "2",
	}
	_, err := apply(t, layer, tarOf(t,
		entry{name: "d/", typ: tar.TypeDir, xattrs: x},
		entry{name: "f", typ: tar.TypeReg, body: "x", xattrs: x},
	))
	if err != nil {
		t.Fatal(err)
	}
	check()
	for _, name := range []string{"d", "f"} {
		got, err := readNode(filepath.Join(layer, name))
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"user.keep": "1", "trusted.keep": "2"}
		if len(got.xattrs) != len(want) || got.xattrs["user.keep"] != "1" || got.xattrs["trusted.keep"] != "2" {
			t.Fatalf("%s xattrs = %v, want %v", name, got.xattrs, want)
		}
	}
	// The applier's own opaque conversion still writes its xattr.
	if _, err := apply(t, layer, tarOf(t, file("d/.wh..wh..opq", ""))); err != nil {
		t.Fatal(err)
	}
	if got, _ := readNode(filepath.Join(layer, "d")); got.xattrs["trusted.overlay.opaque"] != "y" {
		t.Fatalf("opaque marker not converted: %v", got.xattrs)
	}
}

func TestApplyBadEntriesAreInvalidArgument(t *testing.T) {
	for name, entries := range map[string][]entry{
		"hard link to a dir": {dir("d/"), hardlink("h", "d")},
		"hard link to root":  {hardlink("h", "/")},
		"symlink loop":       {symlink("a", "a"), file("a/x", "")},
		"file as a parent":   {file("f", ""), file("f/x", "")},
		"root not a dir":     {file(".", "")},
		"bad whiteout":       {file("d/.wh..", "")},
		"unsupported entry":  {{name: "x", typ: 'Z'}},
	} {
		t.Run(name, func(t *testing.T) {
			layer, check := sandbox(t)
			_, err := apply(t, layer, tarOf(t, entries...))
			check()
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("err = %v, want ErrInvalidArgument", err)
			}
		})
	}
}

// TestChmodViaProc covers the path for kernels without fchmodat2: a
// symlink (or a hard link to one) is left alone, a file is changed.
func TestChmodViaProc(t *testing.T) {
	layer, check := sandbox(t)
	out := filepath.Dir(layer)
	if _, err := apply(t, layer, tarOf(t, symlink("s", filepath.Join(out, "canary")), hardlink("h", "s"), file("f", "x"))); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(layer, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, name := range []string{"s", "h", "f"} {
		if err := chmodViaProc(fd, name, 0o4777); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	check()
	if fi, err := os.Lstat(filepath.Join(layer, "f")); err != nil || fi.Mode()&(os.ModeSetuid|os.ModePerm) != os.ModeSetuid|0o777 {
		t.Fatalf("f: %v, %v", fi.Mode(), err)
	}
}
