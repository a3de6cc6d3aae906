package sandbox

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/holder"
)

// TestMain lets the test binary be the user namespace holder ("hold FLAGS",
// package holder), as berth-runtime is for berthd.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "hold" {
		os.Exit(holder.Run(os.Args[2]))
	}
	os.Exit(m.Run())
}

// holderBinary is the test binary as the user namespace holder (see TestMain); the
// test is skipped without root.
func holderBinary(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

func oneRange(host uint32) *UserNamespace {
	return &UserNamespace{UIDs: []IDMap{{0, host, 65536}}, GIDs: []IDMap{{0, host, 65536}}}
}

func TestUserNamespaceValidate(t *testing.T) {
	pod := Spec{NetworkMode: ModePod, IPCMode: ModePod, PIDMode: ModeContainer}
	cases := []struct {
		name string
		u    *UserNamespace
		spec Spec
		want string // "" is valid
	}{
		{"one range each", oneRange(100000), pod, ""},
		{"two uid ranges", &UserNamespace{UIDs: []IDMap{{0, 1000, 10}, {10, 5000, 10}}, GIDs: []IDMap{{0, 1000, 10}}}, pod, "exactly one uid"},
		{"no gid range", &UserNamespace{UIDs: []IDMap{{0, 1000, 10}}}, pod, "exactly one gid"},
		{"root not mapped", &UserNamespace{UIDs: []IDMap{{1, 1000, 10}}, GIDs: []IDMap{{0, 1000, 10}}}, pod, "container ID 0"},
		{"empty range", &UserNamespace{UIDs: []IDMap{{0, 1000, 0}}, GIDs: []IDMap{{0, 1000, 10}}}, pod, "size 0"},
		{"host root", &UserNamespace{UIDs: []IDMap{{0, 1000, 10}}, GIDs: []IDMap{{0, 0, 10}}}, pod, "host's root"},
		{"past the last ID", &UserNamespace{UIDs: []IDMap{{0, 1 << 31, 1 << 31}}, GIDs: []IDMap{{0, 1000, 10}}}, pod, "past the last"},
		{"host network", oneRange(100000), Spec{NetworkMode: ModeNode, IPCMode: ModePod, PIDMode: ModePod}, "network"},
		{"host IPC", oneRange(100000), Spec{NetworkMode: ModePod, IPCMode: ModeNode, PIDMode: ModePod}, "IPC"},
		{"host PID", oneRange(100000), Spec{NetworkMode: ModePod, IPCMode: ModePod, PIDMode: ModeNode}, "PID"},
	}
	for _, c := range cases {
		err := c.u.Validate(c.spec)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, errdefs.ErrInvalidArgument)):
			t.Errorf("%s: error %v, want InvalidArgument with %q", c.name, err, c.want)
		}
	}
}

// TestPinNamespacesInUserNamespace makes a pod's namespaces under a user
// namespace of its own: the network, IPC and UTS namespaces must be owned by
// it (so that the pod's root may administer them), and configured as usual.
func TestPinNamespacesInUserNamespace(t *testing.T) {
	self := holderBinary(t)
	dir := filepath.Join(t.TempDir(), "pod")
	kinds := []string{NetNS, IPCNS, UTSNS}
	sysctls := map[string]string{"net.ipv4.ip_unprivileged_port_start": "100"}
	req := NamespaceRequest{Kinds: kinds, Hostname: "userns-pod", Sysctls: sysctls, UserNS: oneRange(300000)}
	pins, err := PinNamespaces(dir, req, self)
	if err != nil {
		t.Fatal(err)
	}
	defer UnpinNamespaces(pins)
	if pins[UserNS] == "" || inode(t, pins[UserNS]) == inode(t, "/proc/self/ns/user") {
		t.Fatalf("user pin %q is missing or the host's", pins[UserNS])
	}
	for _, k := range kinds {
		if owner := ownerInode(t, pins[k]); owner != inode(t, pins[UserNS]) {
			t.Errorf("%s namespace is owned by user namespace %d, not the pod's", k, owner)
		}
	}
	if owner := mqueueOwner(t, pins[IPCNS]); owner != "300000" {
		t.Errorf("the IPC namespace's mqueue filesystem belongs to host uid %s, not the pod's root", owner)
	}
	var hostname, port string
	inNamespaces(t, map[string]string{NetNS: pins[NetNS], UTSNS: pins[UTSNS]}, func() {
		hostname, _ = os.Hostname()
		port = readSysctls(t, sysctls)["net.ipv4.ip_unprivileged_port_start"]
	})
	if hostname != "userns-pod" || port != "100" {
		t.Fatalf("inside: hostname %q, unprivileged port start %q", hostname, port)
	}
	if err := UnpinNamespaces(pins); err != nil {
		t.Fatal(err)
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
}

// mqueueOwner is the host uid owning the root of the mqueue filesystem of the
// pinned IPC namespace (mounted in a private mount namespace of a child).
func mqueueOwner(t *testing.T, pin string) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("nsenter", "--ipc="+pin, "unshare", "--mount", "--propagation", "private",
		"sh", "-c", `mount -t mqueue mqueue "$0" && stat -c %u "$0"`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount the mqueue filesystem: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// ownerInode is the inode of the user namespace that owns a pinned namespace.
func ownerInode(t *testing.T, pin string) uint64 {
	t.Helper()
	fd, err := unix.Open(pin, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	owner, err := unix.IoctlRetInt(fd, unix.NS_GET_USERNS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(owner)
	var st unix.Stat_t
	if err := unix.Fstat(owner, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A failure at any step of making a user-namespaced pod's namespaces leaves
// no pin and no mount: no holder to run, or a sysctl failing after the pins.
func TestPinNamespacesInUserNamespaceFailureLeavesNothing(t *testing.T) {
	self := holderBinary(t)
	dir := filepath.Join(t.TempDir(), "pod")
	req := NamespaceRequest{Kinds: []string{NetNS, IPCNS, UTSNS}, UserNS: oneRange(300000)}
	if _, err := PinNamespaces(dir, req, filepath.Join(t.TempDir(), "no-such-holder")); err == nil {
		t.Fatal("pinned without a holder")
	}
	req.Sysctls = map[string]string{"net.ipv4.nonesuch": "1"}
	if _, err := PinNamespaces(dir, req, self); err == nil {
		t.Fatal("a missing sysctl was set")
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("pins left: %d", len(entries))
	}
}
