package spec

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

//lint:file-ignore SA1019 the deprecated apparmor_profile field is tested on purpose

func TestLSM(t *testing.T) {
	none := LSM{}
	armored := LSM{AppArmor: true, AppArmorProfiles: map[string]bool{DefaultAppArmorProfile: true, "strict": true}}
	armoredBare := LSM{AppArmor: true}
	localhost := func(name string) *runtime.SecurityProfile {
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: name}
	}
	for _, tc := range []struct {
		name    string
		sc      *runtime.LinuxContainerSecurityContext
		host    LSM
		profile string
		check   func(error) bool // nil: no error
	}{
		{"nothing asked", nil, none, "", nil},
		{"nothing asked with AppArmor", nil, armored, DefaultAppArmorProfile, nil},
		{"nothing asked, default not loaded", nil, armoredBare, "", nil},
		{"runtime default without AppArmor", &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{}}, none, "", nil},
		{"localhost without AppArmor", &runtime.LinuxContainerSecurityContext{Apparmor: localhost("strict")}, none, "", errdefs.IsInvalidArgument},
		{"unconfined", &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}},
			armored, "", nil},
		{"runtime default with AppArmor", &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{}}, armored, DefaultAppArmorProfile, nil},
		{"runtime default not loaded", &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{}}, armoredBare, "", errdefs.IsFailedPrecondition},
		{"localhost loaded", &runtime.LinuxContainerSecurityContext{Apparmor: localhost("strict")}, armored, "strict", nil},
		{"localhost not loaded", &runtime.LinuxContainerSecurityContext{Apparmor: localhost("other")}, armored, "", errdefs.IsFailedPrecondition},
		{"localhost with the kubelet's prefix", &runtime.LinuxContainerSecurityContext{Apparmor: localhost("localhost/strict")}, armored, "strict", nil},
		{"deprecated localhost", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "localhost/strict"}, armored, "strict", nil},
		{"deprecated unconfined", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "unconfined"}, armored, "", nil},
		{"deprecated runtime default", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "runtime/default"}, armored, DefaultAppArmorProfile, nil},
		{"deprecated nonsense", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "strict"}, armored, "", errdefs.IsInvalidArgument},
		{"the new field wins", &runtime.LinuxContainerSecurityContext{ApparmorProfile: "localhost/other", Apparmor: localhost("localhost/strict")},
			armored, "strict", nil},
		{"SELinux without SELinux", &runtime.LinuxContainerSecurityContext{SelinuxOptions: &runtime.SELinuxOption{Type: "spc_t"}}, none, "",
			errdefs.IsInvalidArgument},
		{"SELinux with SELinux", &runtime.LinuxContainerSecurityContext{SelinuxOptions: &runtime.SELinuxOption{Level: "s0:c1,c2"}},
			LSM{SELinux: true}, "", nil},
		{"empty SELinux options", &runtime.LinuxContainerSecurityContext{SelinuxOptions: &runtime.SELinuxOption{}}, none, "", nil},
	} {
		s := &specs.Spec{Process: &specs.Process{}}
		err := applyLSM(s, tc.sc, tc.host)
		switch {
		case tc.check == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.check != nil && !tc.check(err):
			t.Errorf("%s: %v, not the error wanted", tc.name, err)
		case err == nil && s.Process.ApparmorProfile != tc.profile:
			t.Errorf("%s: profile %q, want %q", tc.name, s.Process.ApparmorProfile, tc.profile)
		}
	}
}

// TestDefaultAppArmorProfileCompiles runs the default profile through
// apparmor_parser without loading it (this host's kernel has no AppArmor;
// hack/install-deps.sh installs the parser): a syntax error fails it.
func TestDefaultAppArmorProfileCompiles(t *testing.T) {
	if _, err := exec.LookPath("apparmor_parser"); err != nil {
		t.Skip("apparmor_parser is not installed (hack/install-deps.sh installs it)")
	}
	compile := func(text string) error {
		cmd := exec.Command("apparmor_parser", "--skip-kernel-load", "--skip-cache")
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := compile(DefaultAppArmorProfileText); err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(DefaultAppArmorProfileText, "deny mount,", "deny mount", 1)
	if compile(broken) == nil {
		t.Fatal("the parser accepted a broken profile: this test checks nothing")
	}
}
