package spec

import (
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A host like this one: everything but CAP_SYS_RESOURCE.
var hostCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
	"CAP_AUDIT_WRITE", "CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}

func TestCapabilities(t *testing.T) {
	for _, tc := range []struct {
		name       string
		add, drop  []string
		privileged bool
		has, lacks []string
		count      int
	}{
		{name: "defaults", has: []string{"CAP_CHOWN", "CAP_KILL"}, lacks: []string{"CAP_SYS_ADMIN", "CAP_NET_ADMIN"}, count: 14},
		{name: "add", add: []string{"net_admin", "CAP_SYS_PTRACE"}, has: []string{"CAP_NET_ADMIN", "CAP_SYS_PTRACE"}, count: 16},
		{name: "drop", drop: []string{"CHOWN"}, lacks: []string{"CAP_CHOWN"}, count: 13},
		{name: "drop all", drop: []string{"ALL"}, count: 0},
		{name: "drop all add one", drop: []string{"ALL"}, add: []string{"NET_BIND_SERVICE"}, has: []string{"CAP_NET_BIND_SERVICE"}, count: 1},
		{name: "add all", add: []string{"ALL"}, count: len(hostCaps)},
		{name: "add all drop one", add: []string{"ALL"}, drop: []string{"SYS_ADMIN"}, lacks: []string{"CAP_SYS_ADMIN"}, count: len(hostCaps) - 1},
		{name: "privileged", privileged: true, drop: []string{"ALL"}, has: []string{"CAP_SYS_ADMIN"}, count: len(hostCaps)},
	} {
		sc := &runtime.LinuxContainerSecurityContext{Privileged: tc.privileged,
			Capabilities: &runtime.Capability{AddCapabilities: tc.add, DropCapabilities: tc.drop}}
		got, _, err := capabilities(sc, hostCaps)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got) != tc.count {
			t.Errorf("%s: %d capabilities %v, want %d", tc.name, len(got), got, tc.count)
		}
		for _, c := range tc.has {
			if !slices.Contains(got, c) {
				t.Errorf("%s: lacks %s", tc.name, c)
			}
		}
		for _, c := range tc.lacks {
			if slices.Contains(got, c) {
				t.Errorf("%s: has %s", tc.name, c)
			}
		}
	}
	// What the host lacks cannot be added.
	sc := &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{AddCapabilities: []string{"SYS_RESOURCE"}}}
	if _, _, err := capabilities(sc, hostCaps); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("adding a capability the host lacks: %v", err)
	}
}

func TestPrivilegedAndPaths(t *testing.T) {
	in := baseInput()
	in.Host = Host{Capabilities: hostCaps, Devices: []specs.LinuxDevice{{Path: "/dev/loop0", Type: "b", Major: 7}}}
	in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
		Privileged: true, MaskedPaths: []string{"/proc/kcore"}}}
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 || len(s.Linux.Devices) != 1 ||
		!s.Linux.Resources.Devices[0].Allow || slices.Contains(mountAt(s, "/sys").Options, "ro") ||
		len(s.Process.Capabilities.Bounding) != len(hostCaps) {
		t.Fatalf("privileged spec: masked %v ro %v devices %v rules %v sys %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths,
			s.Linux.Devices, s.Linux.Resources.Devices, mountAt(s, "/sys").Options)
	}
	in.Config.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{MaskedPaths: []string{"/bin/ls"}, ReadonlyPaths: []string{"/etc"}}
	if b, err = Build(in); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.Spec.Linux.MaskedPaths, []string{"/bin/ls"}) || !slices.Equal(b.Spec.Linux.ReadonlyPaths, []string{"/etc"}) ||
		b.Spec.Linux.Resources.Devices[0].Allow || !slices.Contains(mountAt(b.Spec, "/sys").Options, "ro") {
		t.Fatalf("paths from the kubelet: %v %v", b.Spec.Linux.MaskedPaths, b.Spec.Linux.ReadonlyPaths)
	}
}

func TestRootfsPropagation(t *testing.T) {
	in := baseInput()
	b, _ := Build(in)
	if b.Spec.Linux.RootfsPropagation != "" {
		t.Fatalf("default rootfs propagation %q", b.Spec.Linux.RootfsPropagation)
	}
	in.Mounts = []specs.Mount{{Destination: "/a", Source: "/a", Type: "bind", Options: []string{"rbind", "rslave"}},
		{Destination: "/b", Source: "/b", Type: "bind", Options: []string{"rbind", "rshared"}}}
	if b, _ = Build(in); b.Spec.Linux.RootfsPropagation != "rshared" {
		t.Fatalf("with a bidirectional mount: %q", b.Spec.Linux.RootfsPropagation)
	}
}

// TestAmbientCapabilities: add_ambient_capabilities are added to the set and
// are the ambient (and inheritable) set; a dropped one leaves every set; ALL
// and what the host lacks are refused.
func TestAmbientCapabilities(t *testing.T) {
	sc := &runtime.LinuxContainerSecurityContext{Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"},
		AddAmbientCapabilities: []string{"net_admin", "CAP_NET_BIND_SERVICE", "NET_ADMIN"}}}
	caps, ambient, err := capabilities(sc, hostCaps)
	if err != nil || !slices.Equal(ambient, []string{"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"}) || len(caps) != 2 ||
		!slices.Contains(caps, "CAP_NET_ADMIN") || !slices.Contains(caps, "CAP_NET_BIND_SERVICE") {
		t.Fatalf("caps %v ambient %v %v", caps, ambient, err)
	}
	in := baseInput()
	in.Host = Host{Capabilities: hostCaps}
	in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc}
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if c := b.Spec.Process.Capabilities; !slices.Equal(c.Ambient, ambient) || !slices.Equal(c.Inheritable, ambient) ||
		!slices.Equal(c.Permitted, caps) || !slices.Equal(c.Effective, caps) || !slices.Equal(c.Bounding, caps) {
		t.Fatalf("spec capabilities %+v", c)
	}
	sc.Capabilities.DropCapabilities = []string{"NET_ADMIN"}
	if caps, ambient, err = capabilities(sc, hostCaps); err != nil || slices.Contains(caps, "CAP_NET_ADMIN") ||
		!slices.Equal(ambient, []string{"CAP_NET_BIND_SERVICE"}) {
		t.Fatalf("after a drop: caps %v ambient %v %v", caps, ambient, err)
	}
	for _, bad := range []string{"ALL", "SYS_RESOURCE", ""} {
		sc.Capabilities.AddAmbientCapabilities = []string{bad}
		if _, _, err := capabilities(sc, hostCaps); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ambient %q: %v, want InvalidArgument", bad, err)
		}
	}
}
