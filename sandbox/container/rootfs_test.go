package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// Options with paths relative to a dir (long layer chains) mount from a
// thread of their own: the process's working directory stays where it was.
func TestMountRootfsRelativeToDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	var lower []string
	for i := range 120 {
		layer := filepath.Join(dir, "layers", strings.Repeat("x", 60)+strconv.Itoa(i))
		if err := os.MkdirAll(layer, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(layer, fmt.Sprint("file", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "l"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(layer, filepath.Join(dir, "l", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		lower = append(lower, "l/"+strconv.Itoa(i))
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	wd, _ := os.Getwd()
	target := filepath.Join(t.TempDir(), "rootfs")
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=upper,workdir=work,index=off"
	if err := MountRootfs(opts, dir, target); err != nil {
		t.Fatal(err)
	}
	defer UnmountRootfs(target)
	if now, _ := os.Getwd(); now != wd {
		t.Fatalf("working directory moved to %s", now)
	}
	entries, err := os.ReadDir(target)
	if err != nil || len(entries) != 120 {
		t.Fatalf("merged view has %d entries (%v), want 120", len(entries), err)
	}
}

// imageRoot makes a root filesystem holding the given files (name → content)
// and returns it.
func imageRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// Symlinks in an image resolve inside its root, as the container sees them:
// one that stays inside is followed; an absolute or "../" one that would
// leave it reaches the root's own file of that name, never the host's.
func TestReadImageFileSymlinks(t *testing.T) {
	host := t.TempDir()
	hostFile := filepath.Join(host, "passwd")
	if err := os.WriteFile(hostFile, []byte("host:x:4242:4242::/:/bin/sh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	escape := strings.Repeat("../", 40) + strings.TrimPrefix(hostFile, "/")
	for _, c := range []struct {
		name, link string
		inRoot     map[string]string
		want       string
	}{
		{"relative inside", "../usr/lib/passwd", map[string]string{"usr/lib/passwd": "inside\n"}, "inside\n"},
		{"absolute inside", "/usr/lib/passwd", map[string]string{"usr/lib/passwd": "inside\n"}, "inside\n"},
		{"absolute host path", hostFile, nil, ""},
		{"absolute host path, also in the root", hostFile, map[string]string{hostFile: "in root\n"}, "in root\n"},
		{"dot-dot out", escape, nil, ""},
		{"dot-dot out, also in the root", escape, map[string]string{hostFile: "in root\n"}, "in root\n"},
		{"host /dev/zero", "/dev/zero", nil, ""},
		{"through /proc/self/root", "/proc/self/root" + hostFile, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := imageRoot(t, c.inRoot)
			if err := os.Symlink(c.link, filepath.Join(root, "etc/passwd")); err != nil {
				t.Fatal(err)
			}
			passwd, _, err := UserFiles(root)
			if err != nil {
				t.Fatal(err)
			}
			if string(passwd) != c.want {
				t.Fatalf("read %q through %s, want %q", passwd, c.link, c.want)
			}
		})
	}
}

// What is not a regular file is refused (InvalidArgument naming the file),
// without blocking on a FIFO or reading a device; a missing file is empty.
func TestReadImageFileRefuses(t *testing.T) {
	for _, c := range []struct {
		name   string
		make   func(p string) error
		root   bool // mknod of a device
		reason string
	}{
		{"FIFO", func(p string) error { return unix.Mkfifo(p, 0o644) }, false, "is a FIFO"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, false, "is a directory"},
		{"socket", func(p string) error {
			fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			return unix.Bind(fd, &unix.SockaddrUnix{Name: p})
		}, false, "is a socket"},
		// /dev/null: reading it is harmless, so the old reader passed it as empty.
		{"char device", func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))) }, true, "is a character device"},
		{"block device", func(p string) error { return unix.Mknod(p, unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))) }, true, "is a block device"},
		{"symlink to a FIFO", func(p string) error {
			if err := unix.Mkfifo(filepath.Join(filepath.Dir(p), "fifo"), 0o644); err != nil {
				return err
			}
			return os.Symlink("fifo", p)
		}, false, "is a FIFO"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Getuid() != 0 {
				t.Skip("mknod needs root")
			}
			root := imageRoot(t, map[string]string{"etc/passwd": "root:x:0:0::/:/bin/sh\n"})
			if err := c.make(filepath.Join(root, "etc/group")); err != nil {
				t.Fatal(err)
			}
			_, _, err := UserFiles(root)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "/etc/group "+c.reason) {
				t.Fatalf("UserFiles = %v, want InvalidArgument: /etc/group %s", err, c.reason)
			}
		})
	}
}

func TestReadImageFileSizeAndMissing(t *testing.T) {
	root := imageRoot(t, map[string]string{"etc/passwd": strings.Repeat("x", maxUserFile), "etc/group": strings.Repeat("x", maxUserFile+1)})
	_, _, err := UserFiles(root)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), fmt.Sprintf("/etc/group is over %d bytes", maxUserFile)) {
		t.Fatalf("UserFiles of an oversized group = %v, want InvalidArgument", err)
	}
	if err := os.Remove(filepath.Join(root, "etc/group")); err != nil {
		t.Fatal(err)
	}
	passwd, group, err := UserFiles(root)
	if err != nil || len(passwd) != maxUserFile || group != nil {
		t.Fatalf("UserFiles = %d bytes, %q, %v; want the whole passwd and no group", len(passwd), group, err)
	}
	// /etc a file: nothing under it exists.
	root = imageRoot(t, nil)
	if err := os.Remove(filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if passwd, group, err := UserFiles(root); err != nil || passwd != nil || group != nil {
		t.Fatalf("UserFiles without /etc = %q, %q, %v; want none", passwd, group, err)
	}
}
