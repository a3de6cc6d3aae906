package sandbox

import (
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// inNamespaces runs fn on a thread that joined the pinned namespaces and
// returns to its own afterwards.
func inNamespaces(t *testing.T, pins map[string]string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		var kinds []string
		for k := range pins {
			kinds = append(kinds, k)
		}
		restore, err := saveNamespaces(kinds)
		if err != nil {
			done <- err
			return
		}
		for _, pin := range pins {
			fd, err := unix.Open(pin, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				done <- err
				return
			}
			err = unix.Setns(fd, 0)
			unix.Close(fd)
			if err != nil {
				done <- err
				return
			}
		}
		fn()
		err = restore()
		if err == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func mountsUnder(t *testing.T, dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}

// readSysctls reads the current values of the named sysctls.
func readSysctls(t *testing.T, names map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for name := range names {
		data, err := os.ReadFile(sysctlPath(name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = strings.TrimSpace(string(data))
	}
	return out
}

func TestPinNamespaces(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "pod1")
	sysctls := map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_unprivileged_port_start": "100", "fs/mqueue/msg_max": "100"}
	hostValues := readSysctls(t, sysctls)
	pins, err := PinNamespaces(dir, NamespaceRequest{Kinds: []string{NetNS, IPCNS, UTSNS}, Hostname: "test-hostname", Sysctls: sysctls}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer UnpinNamespaces(pins)
	for _, k := range []string{NetNS, IPCNS, UTSNS} {
		if inode(t, pins[k]) == inode(t, "/proc/self/ns/"+k) {
			t.Fatalf("%s pin is the host's namespace", k)
		}
	}
	var ifaces []string
	var hostname string
	var podValues map[string]string
	inNamespaces(t, pins, func() {
		podValues = readSysctls(t, sysctls)
		list, _ := net.Interfaces()
		for _, i := range list {
			name := i.Name
			if i.Flags&net.FlagUp != 0 {
				name += "(up)"
			}
			ifaces = append(ifaces, name)
		}
		var u unix.Utsname
		unix.Uname(&u)
		hostname = unix.ByteSliceToString(u.Nodename[:])
	})
	if strings.Join(ifaces, ",") != "lo(up)" || hostname != "test-hostname" {
		t.Fatalf("inside: interfaces %v, hostname %q", ifaces, hostname)
	}
	if host, _ := os.Hostname(); host == "test-hostname" {
		t.Fatal("the host's hostname changed")
	}
	if !maps.Equal(podValues, sysctls) {
		t.Fatalf("sysctls inside: %v, want %v", podValues, sysctls)
	}
	if now := readSysctls(t, sysctls); !maps.Equal(now, hostValues) {
		t.Fatalf("the host's sysctls changed: %v, were %v", now, hostValues)
	}

	if err := UnpinNamespaces(pins); err != nil {
		t.Fatal(err)
	}
	if err := UnpinNamespaces(pins); err != nil {
		t.Fatalf("second unpin: %v", err)
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("pins left: %d", len(entries))
	}
}

func TestPinNamespacesFailureLeavesNothing(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	// An existing file where the UTS pin goes makes the third pin fail.
	os.WriteFile(filepath.Join(dir, UTSNS), nil, 0o600)
	if _, err := PinNamespaces(dir, NamespaceRequest{Kinds: []string{NetNS, IPCNS, UTSNS}}, ""); err == nil {
		t.Fatal("pinning over an existing file succeeded")
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("mounts left after a failed pin: %v", m)
	}
	for _, k := range []string{NetNS, IPCNS} {
		if _, err := os.Stat(filepath.Join(dir, k)); !os.IsNotExist(err) {
			t.Fatalf("%s pin left after a failed pin", k)
		}
	}
	if _, err := PinNamespaces(dir, NamespaceRequest{Kinds: []string{"pid"}}, ""); err == nil {
		t.Fatal("unknown kind accepted")
	}
	// A sysctl the kernel does not have fails after the pins were made.
	if _, err := PinNamespaces(dir, NamespaceRequest{Kinds: []string{NetNS}, Sysctls: map[string]string{"net.ipv4.nonesuch": "1"}}, ""); err == nil {
		t.Fatal("a missing sysctl was set")
	}
	if m := mountsUnder(t, dir); len(m) != 0 {
		t.Fatalf("mounts left after a failed sysctl: %v", m)
	}
}

func TestIsMountPoint(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	pins, err := PinNamespaces(dir, NamespaceRequest{Kinds: []string{NetNS}}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer UnpinNamespaces(pins)
	shm := filepath.Join(dir, "shm")
	if err := (HostOS{}).MountShm(shm, 1<<20, ""); err != nil {
		t.Fatal(err)
	}
	defer (HostOS{}).Unmount(shm)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o600)
	for p, want := range map[string]bool{pins[NetNS]: true, shm: true, plain: false, filepath.Join(dir, "absent"): false} {
		if got := (HostOS{}).IsMountPoint(p); got != want {
			t.Errorf("IsMountPoint(%s) = %v, want %v", filepath.Base(p), got, want)
		}
	}
}
