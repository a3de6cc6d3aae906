package spec

import (
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func baseInput() Input {
	return Input{
		Config: &runtime.ContainerConfig{
			Metadata:    &runtime.ContainerMetadata{Name: "app"},
			Args:        []string{"-c", "echo hi"},
			Envs:        []*runtime.KeyValue{{Key: "FOO", Value: []byte("bar")}},
			Annotations: map[string]string{"a": "b"},
		},
		Image:    ImageConfig{Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-l"}, Env: []string{"PATH=/bin", "FOO=image"}, WorkingDir: "/srv"},
		User:     User{UID: 33, GID: 33, AdditionalGids: []uint32{33, 100}},
		Hostname: "web-0",
		Rootfs:   "/var/lib/berth/rootfs/c1",
		Namespaces: map[specs.LinuxNamespaceType]string{
			specs.NetworkNamespace: "/run/berth/pods/p/ns/net",
			specs.IPCNamespace:     "/run/berth/pods/p/ns/ipc",
			specs.UTSNamespace:     "/run/berth/pods/p/ns/uts",
		},
		Pod:            PodFiles{Hostname: "/run/p/hostname", Hosts: "/run/p/hosts", ResolvConf: "/run/p/resolv.conf", Shm: "/run/p/shm"},
		CgroupsPath:    "/kubepods/pod1/c1",
		MinOOMScoreAdj: 0,
	}
}

func mountAt(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func TestBuildDefaults(t *testing.T) {
	b, err := Build(baseInput())
	if err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	p := s.Process
	if strings.Join(p.Args, " ") != "/bin/sh -c echo hi" || p.Cwd != "/srv" || p.User.UID != 33 || !slices.Equal(p.User.AdditionalGids, []uint32{33, 100}) {
		t.Fatalf("process = %+v", p)
	}
	if !slices.Equal(p.Env, []string{"PATH=/bin", "FOO=bar", "HOSTNAME=web-0"}) {
		t.Fatalf("env = %q", p.Env)
	}
	if len(p.Capabilities.Bounding) != 14 || slices.Contains(p.Capabilities.Bounding, "CAP_SYS_ADMIN") {
		t.Fatalf("capabilities = %v", p.Capabilities.Bounding)
	}
	if s.Hostname != "" {
		t.Fatalf("hostname %q set although the UTS namespace is the pod's", s.Hostname)
	}
	var kinds []string
	for _, ns := range s.Linux.Namespaces {
		kinds = append(kinds, string(ns.Type)+"="+ns.Path)
	}
	want := []string{"pid=", "network=/run/berth/pods/p/ns/net", "ipc=/run/berth/pods/p/ns/ipc", "uts=/run/berth/pods/p/ns/uts", "mount="}
	if !slices.Equal(kinds, want) {
		t.Fatalf("namespaces %v, want %v", kinds, want)
	}
	if m := mountAt(s, "/dev/shm"); m == nil || m.Source != "/run/p/shm" {
		t.Fatalf("/dev/shm = %+v", m)
	}
	for _, dst := range []string{"/proc", "/dev", "/dev/pts", "/sys", "/etc/hosts", "/etc/resolv.conf", "/etc/hostname"} {
		if mountAt(s, dst) == nil {
			t.Errorf("no mount at %s", dst)
		}
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Fatal("default masked or read-only paths missing")
	}
	if d := s.Linux.Resources.Devices; len(d) != 1 || d[0].Allow {
		t.Fatalf("device rules %+v, want deny-all", d)
	}
	if s.Linux.CgroupsPath != "/kubepods/pod1/c1" || s.Annotations["a"] != "b" || s.Root.Readonly {
		t.Fatalf("spec = %+v", s)
	}
}

func TestBuildResourcesAndOOMClamp(t *testing.T) {
	in := baseInput()
	in.MinOOMScoreAdj = 0
	in.Config.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20,
		CpusetCpus: "0", OomScoreAdj: -997,
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
	}}
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	r := b.Spec.Linux.Resources
	if *r.CPU.Shares != 512 || *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0" || *r.Memory.Limit != 64<<20 || len(r.HugepageLimits) != 1 {
		t.Fatalf("resources = %+v", r)
	}
	if b.Spec.Process.OOMScoreAdj != nil || len(b.Warnings) != 1 || !strings.Contains(b.Warnings[0], "clamped") {
		t.Fatalf("oom = %v, warnings %v; want clamped to 0 with a warning", b.Spec.Process.OOMScoreAdj, b.Warnings)
	}
	in.Config.Linux.Resources.OomScoreAdj = 1000
	b, _ = Build(in)
	if *b.Spec.Process.OOMScoreAdj != 1000 || len(b.Warnings) != 0 {
		t.Fatalf("oom 1000 = %v, %v", *b.Spec.Process.OOMScoreAdj, b.Warnings)
	}
}

func TestBuildOwnNamespacesAndErrors(t *testing.T) {
	in := baseInput()
	in.Namespaces = map[specs.LinuxNamespaceType]string{specs.NetworkNamespace: "", specs.IPCNamespace: ""}
	in.Pod.Shm = ""
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range b.Spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace || ns.Type == specs.IPCNamespace {
			t.Fatalf("host namespace %s listed", ns.Type)
		}
	}
	if b.Spec.Hostname != "web-0" {
		t.Fatalf("hostname = %q in a new UTS namespace", b.Spec.Hostname)
	}
	if m := mountAt(b.Spec, "/dev/shm"); m == nil || m.Type != "tmpfs" {
		t.Fatalf("/dev/shm = %+v, want its own tmpfs", m)
	}

	rel := baseInput()
	rel.Config.WorkingDir = "srv"
	if _, err := Build(rel); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("relative working dir = %v", err)
	}
	none := baseInput()
	none.Config.Args, none.Image = nil, ImageConfig{}
	if _, err := Build(none); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no command = %v", err)
	}
}

// Without a hugetlb controller the kubelet's hugepage limits are left out:
// libcontainer would fail to create the container otherwise.
func TestNoHugetlbDropsHugepageLimits(t *testing.T) {
	in := baseInput()
	in.Config.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 0}}}}
	b, err := Build(in)
	if err != nil || len(b.Spec.Linux.Resources.HugepageLimits) != 1 {
		t.Fatalf("with hugetlb: %v, %v", b.Spec.Linux.Resources.HugepageLimits, err)
	}
	in.Host.NoHugetlb = true
	if b, err = Build(in); err != nil || b.Spec.Linux.Resources.HugepageLimits != nil {
		t.Fatalf("without hugetlb: %v, %v", b.Spec.Linux.Resources.HugepageLimits, err)
	}
}

func TestBuildJoinsThePodsUserNamespace(t *testing.T) {
	in := baseInput()
	in.Namespaces[specs.UserNamespace] = "/run/berth/pods/p/ns/user"
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	ns := b.Spec.Linux.Namespaces
	if len(ns) != 6 || ns[0] != (specs.LinuxNamespace{Type: specs.UserNamespace, Path: "/run/berth/pods/p/ns/user"}) {
		t.Fatalf("namespaces %v: the pod's user namespace must come first", ns)
	}
	if len(b.Spec.Linux.UIDMappings) != 0 {
		t.Fatalf("mappings %v given with a namespace to join", b.Spec.Linux.UIDMappings)
	}
}

func TestBuildSELinuxLabels(t *testing.T) {
	in := baseInput()
	in.LSM = LSM{SELinux: true}
	in.SELinuxProcessLabel, in.SELinuxMountLabel = "system_u:system_r:container_t:s0:c1,c2", "system_u:object_r:container_file_t:s0:c1,c2"
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if b.Spec.Process.SelinuxLabel != in.SELinuxProcessLabel || b.Spec.Linux.MountLabel != in.SELinuxMountLabel {
		t.Fatalf("labels %q, %q", b.Spec.Process.SelinuxLabel, b.Spec.Linux.MountLabel)
	}
	in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}}
	if b, err = Build(in); err != nil || b.Spec.Process.SelinuxLabel != "" || b.Spec.Linux.MountLabel != "" {
		t.Fatalf("privileged: labels %q, %q, %v", b.Spec.Process.SelinuxLabel, b.Spec.Linux.MountLabel, err)
	}
}

// TestBuildRefusesWhatItCannotDo: cdi_devices are Unimplemented naming the
// field (bad devices: TestDevicesRefused); envs a process cannot carry are InvalidArgument naming
// the variable (never a mangled value).
func TestBuildRefusesWhatItCannotDo(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		edit        func(*runtime.ContainerConfig)
		want        func(error) bool
	}{
		{"cdi device", "cdi_devices", func(c *runtime.ContainerConfig) {
			c.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.com/gpu=0"}}
		}, errdefs.IsNotImplemented},
		{"NUL in a value", "envs: value of BAD", func(c *runtime.ContainerConfig) {
			c.Envs = append(c.Envs, &runtime.KeyValue{Key: "BAD", Value: []byte("a\x00b")})
		}, errdefs.IsInvalidArgument},
		{"not UTF-8", "envs: value of LATIN1", func(c *runtime.ContainerConfig) {
			c.Envs = append(c.Envs, &runtime.KeyValue{Key: "LATIN1", Value: []byte("caf\xe9")})
		}, errdefs.IsInvalidArgument},
		{"= in a key", "envs: key", func(c *runtime.ContainerConfig) {
			c.Envs = append(c.Envs, &runtime.KeyValue{Key: "A=B", Value: []byte("c")})
		}, errdefs.IsInvalidArgument},
		{"empty key", "envs: key", func(c *runtime.ContainerConfig) {
			c.Envs = append(c.Envs, &runtime.KeyValue{Value: []byte("c")})
		}, errdefs.IsInvalidArgument},
	} {
		in := baseInput()
		tc.edit(in.Config)
		if _, err := Build(in); !tc.want(err) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.field)
		}
	}
	in := baseInput()
	in.Config.Envs = append(in.Config.Envs, &runtime.KeyValue{Key: "UTF8", Value: []byte("café ☕ a=b")})
	b, err := Build(in)
	if err != nil || !slices.Contains(b.Spec.Process.Env, "UTF8=café ☕ a=b") {
		t.Fatalf("a UTF-8 value: %v %v", err, b)
	}
}
