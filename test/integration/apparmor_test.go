package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testProfile is a Localhost profile the test loads: it lets everything but
// writes under /data.
const testProfile = `#include <tunables/global>
profile berth-test-no-data-writes flags=(attach_disconnected,mediate_deleted) {
  #include <abstractions/base>
  file,
  network,
  capability,
  deny /data/** w,
}
`

// On a host with AppArmor (hack/vm.sh's VM; this CI host has none): berthd
// loads its default profile and containers that ask for nothing or for
// RuntimeDefault run under it, where even CAP_SYS_ADMIN mounts nothing;
// Unconfined and privileged containers run unconfined; a Localhost profile
// is enforced.
func TestAppArmor(t *testing.T) {
	if data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err != nil || !strings.HasPrefix(string(data), "Y") {
		t.Skip("this host has no AppArmor")
	}
	load := exec.Command("apparmor_parser", "--replace", "--skip-cache")
	load.Stdin = strings.NewReader(testProfile)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load the test profile: %v: %s", err, out)
	}
	t.Cleanup(func() {
		unload := exec.Command("apparmor_parser", "--remove")
		unload.Stdin = strings.NewReader(testProfile)
		_ = unload.Run()
	})
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("apparmor")
	pod := runPod(t, rc, podCfg)
	withSC := func(sc *runtime.LinuxContainerSecurityContext) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) { c.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc} }
	}
	sysAdmin := &runtime.Capability{AddCapabilities: []string{"SYS_ADMIN"}}
	cases := []struct {
		name, profile string
		sc            *runtime.LinuxContainerSecurityContext
		mounts        bool
	}{
		{"unset", "berth-default (enforce)", &runtime.LinuxContainerSecurityContext{Capabilities: sysAdmin}, false},
		{"runtime-default", "berth-default (enforce)", &runtime.LinuxContainerSecurityContext{Capabilities: sysAdmin,
			Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}}, false},
		{"unconfined", "unconfined", &runtime.LinuxContainerSecurityContext{Capabilities: sysAdmin,
			Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}}, true},
		{"privileged", "unconfined", &runtime.LinuxContainerSecurityContext{Privileged: true}, true},
		{"localhost", "berth-test-no-data-writes (enforce)", &runtime.LinuxContainerSecurityContext{
			Apparmor: &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "berth-test-no-data-writes"}}, false},
	}
	for _, c := range cases {
		id := startContainer(t, rc, pod, podCfg, c.name, withSC(c.sc), "sleep", "100000")
		if r := execSync(t, rc, id, "cat", "/proc/self/attr/current"); strings.TrimSpace(string(r.Stdout)) != c.profile {
			t.Errorf("%s: runs under %q, want %q", c.name, r.Stdout, c.profile)
		}
		r := execSync(t, rc, id, "sh", "-c", "mkdir -p /m && mount -t tmpfs none /m")
		if mounted := r.ExitCode == 0; mounted != c.mounts && c.name != "localhost" {
			t.Errorf("%s: mount worked: %v, want %v (%s)", c.name, mounted, c.mounts, r.Stderr)
		}
	}
	localhost := execSync(t, rc, startContainer(t, rc, pod, podCfg, "localhost2", withSC(cases[4].sc), "sleep", "100000"),
		"sh", "-c", "mkdir -p /data /other && echo x > /other/f && echo x > /data/f")
	if localhost.ExitCode == 0 || !strings.Contains(string(localhost.Stderr), "denied") {
		t.Errorf("a write the Localhost profile denies: exit %d, %q", localhost.ExitCode, localhost.Stderr)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
