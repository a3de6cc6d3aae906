package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func describe(devs []specs.LinuxDevice) []string {
	var out []string
	for _, d := range devs {
		out = append(out, fmt.Sprintf("%s %s %d:%d %o %d:%d", d.Path, d.Type, d.Major, d.Minor, *d.FileMode, *d.UID, *d.GID))
	}
	return out
}

// A device node, directly or through symlinks, gives itself at the
// container path, with the host node's mode and owner.
func TestDeviceNodes(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("zero", filepath.Join(dir, "link-to-link")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/dev/zero", &st); err != nil {
		t.Fatal(err)
	}
	want := []string{fmt.Sprintf("/dev/mydev c 1:5 %o %d:%d", st.Mode&0o777, st.Uid, st.Gid)}
	for _, host := range []string{"/dev/zero", filepath.Join(dir, "zero"), filepath.Join(dir, "link-to-link")} {
		got, err := DeviceNodes(host, "/dev/mydev")
		if err != nil || !slices.Equal(describe(got), want) {
			t.Errorf("DeviceNodes(%s) = %q, %v, want %q", host, describe(got), err, want)
		}
	}
}

// A directory gives the device nodes under it (not through links, not in
// the dirs a container has its own of), each under the container path.
func TestDeviceNodesDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mknod needs root")
	}
	dir := t.TempDir()
	for _, d := range []string{"sub", "pts"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []struct {
		name  string
		mode  uint32
		major uint32
		minor uint32
	}{{"card0", unix.S_IFCHR | 0o660, 226, 0}, {"sub/disk", unix.S_IFBLK | 0o600, 7, 200}, {"pts/0", unix.S_IFCHR | 0o620, 136, 0}} {
		p := filepath.Join(dir, n.name)
		if err := unix.Mknod(p, n.mode, int(unix.Mkdev(n.major, n.minor))); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(p, n.mode&0o777); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(dir, "null")); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "dri") // the directory through a link
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	got, err := DeviceNodes(link, "/dev/dri")
	want := []string{"/dev/dri/card0 c 226:0 660 0:0", "/dev/dri/sub/disk b 7:200 600 0:0"}
	if err != nil || !slices.Equal(describe(got), want) {
		t.Fatalf("DeviceNodes(dir) = %q, %v, want %q", describe(got), err, want)
	}
}

// Anything but a device node or a directory holding some is InvalidArgument
// naming the path.
func TestDeviceNodesRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "none"), dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, empty, dangling, fifo, filepath.Join(dir, "missing")} {
		_, err := DeviceNodes(p, "/dev/x")
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), p) {
			t.Errorf("DeviceNodes(%s): %v, want InvalidArgument naming it", p, err)
		}
	}
}
