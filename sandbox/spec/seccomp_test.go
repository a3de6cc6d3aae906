//lint:file-ignore SA1019 the deprecated seccomp_profile_path is still part of the CRI, and read

package spec

import (
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSeccompChoice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		sc         *runtime.LinuxContainerSecurityContext
		kind, path string
		invalid    bool
	}{
		{"nil is unconfined", nil, SeccompUnconfined, "", false},
		{"empty profile is runtime default", &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{}}, SeccompRuntimeDefault, "", false},
		{"unconfined", &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}},
			SeccompUnconfined, "", false},
		{"localhost", &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost,
			LocalhostRef: "/var/lib/kubelet/seccomp/../seccomp/p.json"}}, SeccompLocalhost, "/var/lib/kubelet/seccomp/p.json", false},
		{"relative localhost", &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost,
			LocalhostRef: "p.json"}}, "", "", true},
		{"path runtime/default", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"}, SeccompRuntimeDefault, "", false},
		{"path docker/default", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "docker/default"}, SeccompRuntimeDefault, "", false},
		{"path unconfined", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "unconfined"}, SeccompUnconfined, "", false},
		{"path localhost", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "localhost//etc/p.json"}, SeccompLocalhost, "/etc/p.json", false},
		{"path relative localhost", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/p.json"}, "", "", true},
		{"path unknown", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "strict"}, "", "", true},
		{"field wins over path", &runtime.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default",
			Seccomp: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}}, SeccompUnconfined, "", false},
	} {
		kind, path, err := SeccompChoice(tc.sc)
		if tc.invalid {
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("%s: %v, want InvalidArgument", tc.name, err)
			}
			continue
		}
		if err != nil || kind != tc.kind || path != tc.path {
			t.Errorf("%s: %q %q %v, want %q %q", tc.name, kind, path, err, tc.kind, tc.path)
		}
	}
}

func TestSeccompInSpec(t *testing.T) {
	build := func(sc *runtime.LinuxContainerSecurityContext, profile Seccomp) (*specs.Spec, error) {
		in := baseInput()
		in.Host = Host{Capabilities: hostCaps}
		in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc}
		in.Seccomp = profile
		b, err := Build(in)
		if err != nil {
			return nil, err
		}
		return b.Spec, nil
	}
	s, err := build(nil, Seccomp{Kind: SeccompRuntimeDefault})
	if err != nil || s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Fatalf("runtime default: %v, %v", s.Linux.Seccomp, err)
	}
	s, _ = build(&runtime.LinuxContainerSecurityContext{Privileged: true}, Seccomp{Kind: SeccompRuntimeDefault})
	if s.Linux.Seccomp != nil {
		t.Fatal("a privileged container got a seccomp profile")
	}
	s, _ = build(nil, Seccomp{Kind: SeccompUnconfined})
	if s.Linux.Seccomp != nil {
		t.Fatal("an unconfined container got a seccomp profile")
	}
	local := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}`
	s, err = build(nil, Seccomp{Kind: SeccompLocalhost, Profile: []byte(local)})
	if err != nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow || s.Linux.Seccomp.Syscalls[0].Names[0] != "sethostname" {
		t.Fatalf("localhost: %+v, %v", s.Linux.Seccomp, err)
	}
	for _, bad := range []string{`{"syscalls": []}`, `not json`} {
		if _, err := build(nil, Seccomp{Kind: SeccompLocalhost, Profile: []byte(bad)}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("profile %q: %v, want InvalidArgument", bad, err)
		}
	}
}

// allowed says whether the default profile lets a container with caps make
// the call (with argument 0 = arg0 where the profile looks at it).
func allowed(p *specs.LinuxSeccomp, call string, arg0 uint64) bool {
	for _, r := range p.Syscalls {
		if !slices.Contains(r.Names, call) || r.Action != specs.ActAllow {
			continue
		}
		if len(r.Args) == 0 {
			return true
		}
		a := r.Args[0]
		if a.Op == specs.OpEqualTo && arg0 == a.Value || a.Op == specs.OpMaskedEqual && arg0&a.Value == a.ValueTwo {
			return true
		}
	}
	return false
}

func TestDefaultSeccomp(t *testing.T) {
	plain := DefaultSeccomp(defaultCapabilities())
	admin := DefaultSeccomp(append(defaultCapabilities(), "CAP_SYS_ADMIN"))
	for _, tc := range []struct {
		call         string
		arg0         uint64
		plain, admin bool
	}{
		{"read", 0, true, true},
		{"openat", 0, true, true},
		{"sethostname", 0, true, true},     // the pod's own UTS namespace
		{"clone", 0x11, true, true},        // fork-like
		{"clone", 0x10000000, false, true}, // CLONE_NEWUSER
		{"unshare", 0, false, true},
		{"mount", 0, false, true},
		{"keyctl", 0, false, false},
		{"kexec_load", 0, false, false},
		{"io_uring_setup", 0, false, false},
		{"personality", 0x0, true, true},
		{"personality", 0x40000, false, false}, // ADDR_NO_RANDOMIZE | ...
		{"chroot", 0, true, true},              // CAP_SYS_CHROOT is a default capability
		{"reboot", 0, false, false},
	} {
		if got := allowed(plain, tc.call, tc.arg0); got != tc.plain {
			t.Errorf("%s(%#x) without CAP_SYS_ADMIN: allowed %v", tc.call, tc.arg0, got)
		}
		if got := allowed(admin, tc.call, tc.arg0); got != tc.admin {
			t.Errorf("%s(%#x) with CAP_SYS_ADMIN: allowed %v", tc.call, tc.arg0, got)
		}
	}
	if r := plain.Syscalls[len(plain.Syscalls)-1]; r.Names[0] != "clone3" || r.Action != specs.ActErrno || *r.ErrnoRet != errnoENOSYS {
		t.Errorf("clone3 rule: %+v", r)
	}
	if *plain.DefaultErrnoRet != errnoEPERM || len(plain.Architectures) == 0 {
		t.Errorf("profile: default errno %d, architectures %v", *plain.DefaultErrnoRet, plain.Architectures)
	}
}
