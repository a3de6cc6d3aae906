package snapshot

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// canaries is a tree of files, dirs and a symlink, with xattrs, next to a
// layer root; check proves that nothing in it changed: each entry's full
// lstat (mode with the setuid bits, owner, size, times, ctime above all: a
// chmod, chown, utimes or setxattr all move it) and its xattrs.
type canaries struct {
	dir   string // holds the root and the canaries; watched itself
	paths []string
	state map[string]nodeState
}

type nodeState struct {
	st     unix.Stat_t
	xattrs map[string]string
}

// canaryNames are relative to the canaries' dir. "layer-evil" shares a
// prefix with the root's name "layer" (a string-prefix containment check
// would take it for inside).
var canaryNames = []string{"", "canary", "canarylink", "layer-evil", "layer-evil/secret", "layer-evil/sub"}

const canaryContent = "untouched"

// makeCanaries builds the canaries in dir (which exists) and records them,
// and dir itself with watchDir (a caller that makes and removes the layer
// root in dir checks the names in it instead).
func makeCanaries(t testing.TB, dir string, watchDir bool) *canaries {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "canary"), []byte(canaryContent), 0o600))
	must(os.Symlink("canary", filepath.Join(dir, "canarylink")))
	must(os.Mkdir(filepath.Join(dir, "layer-evil"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "layer-evil/secret"), []byte(canaryContent), 0o644))
	must(os.Mkdir(filepath.Join(dir, "layer-evil/sub"), 0o755))
	for _, name := range canaryNames {
		p := filepath.Join(dir, name)
		// user.* is refused on symlinks, trusted.* needs root: set what
		// the file system takes, the record holds whatever is there.
		unix.Lsetxattr(p, "user.canary", []byte(name), 0)
		unix.Lsetxattr(p, "trusted.canary", []byte(name), 0)
		unix.Lsetxattr(p, "trusted.overlay.opaque", []byte("n"), 0)
	}
	c := &canaries{dir: dir, state: map[string]nodeState{}}
	for _, name := range canaryNames {
		if name == "" && !watchDir {
			continue
		}
		p := filepath.Join(dir, name)
		c.paths = append(c.paths, p)
		s, err := readNode(p)
		must(err)
		c.state[p] = s
	}
	return c
}

func readNode(p string) (nodeState, error) {
	s := nodeState{xattrs: map[string]string{}}
	if err := unix.Lstat(p, &s.st); err != nil {
		return s, err
	}
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return s, fmt.Errorf("listxattr %s: %w", p, err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			return s, fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		s.xattrs[name] = string(v[:m])
	}
	return s, nil
}

// changed reports what differs from the record, "" when nothing does.
func (c *canaries) changed() string {
	var diffs []string
	for _, p := range c.paths {
		now, err := readNode(p)
		if err != nil {
			diffs = append(diffs, err.Error())
			continue
		}
		if d := diffNode(c.state[p], now); d != "" {
			diffs = append(diffs, p+": "+d)
		}
	}
	return strings.Join(diffs, "\n")
}

func diffNode(was, now nodeState) string {
	var d []string
	a, b := was.st, now.st
	if a.Mode != b.Mode {
		d = append(d, fmt.Sprintf("mode %o -> %o", a.Mode, b.Mode))
	}
	if a.Uid != b.Uid || a.Gid != b.Gid {
		d = append(d, fmt.Sprintf("owner %d:%d -> %d:%d", a.Uid, a.Gid, b.Uid, b.Gid))
	}
	if a.Size != b.Size || a.Nlink != b.Nlink || a.Ino != b.Ino {
		d = append(d, fmt.Sprintf("size/nlink/ino %d/%d/%d -> %d/%d/%d", a.Size, a.Nlink, a.Ino, b.Size, b.Nlink, b.Ino))
	}
	for _, ts := range []struct {
		what     string
		was, now unix.Timespec
	}{{"atime", a.Atim, b.Atim}, {"mtime", a.Mtim, b.Mtim}, {"ctime", a.Ctim, b.Ctim}} {
		if ts.was != ts.now {
			d = append(d, fmt.Sprintf("%s %v -> %v", ts.what, time.Unix(ts.was.Unix()), time.Unix(ts.now.Unix())))
		}
	}
	if len(d) == 0 && a != b {
		d = append(d, fmt.Sprintf("stat %+v -> %+v", a, b))
	}
	if fmt.Sprint(was.xattrs) != fmt.Sprint(now.xattrs) {
		d = append(d, fmt.Sprintf("xattrs %v -> %v", was.xattrs, now.xattrs))
	}
	return strings.Join(d, ", ")
}

// check fails t if any canary changed; then it checks their content too.
func (c *canaries) check(t testing.TB) {
	t.Helper()
	if d := c.changed(); d != "" {
		t.Fatalf("outside the layer root:\n%s", d)
	}
	for _, name := range []string{"canary", "layer-evil/secret"} {
		if b, err := os.ReadFile(filepath.Join(c.dir, name)); err != nil || !bytes.Equal(b, []byte(canaryContent)) {
			t.Fatalf("%s: content %q, %v", name, b, err)
		}
	}
}
