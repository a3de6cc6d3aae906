//lint:file-ignore SA1019 the deprecated seccomp_profile_path is still part of the CRI, and honoured

package integration

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCRIFieldsHonouredOrRefused: request fields Berth used to drop without a
// word. add_ambient_capabilities reach a non-root process (ambient and
// effective); the deprecated seccomp_profile_path alone confines the
// container; cdi_devices, devices with bad permissions or a host path that
// is no device, and an env value a process cannot carry are refused with the
// field named, leaving no container (devices that work: TestDevices).
func TestCRIFieldsHonouredOrRefused(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("cri-fields")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "ambient", func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			RunAsUser:          &runtime.Int64Value{Value: 1000},
			Capabilities:       &runtime.Capability{DropCapabilities: []string{"ALL"}, AddAmbientCapabilities: []string{"NET_BIND_SERVICE"}},
			SeccompProfilePath: "runtime/default",
		}}
	}, "sleep", "100000")
	// The container's init (PID 1 of a pod's shared PID namespace is the pause).
	r := execSync(t, rc, id, "sh", "-c", "grep -E '^(CapAmb|CapEff|CapBnd|Seccomp):' /proc/$(pidof sleep)/status")
	got := strings.Join(strings.Fields(string(r.Stdout)), " ")
	want := "CapEff: 0000000000000400 CapBnd: 0000000000000400 CapAmb: 0000000000000400 Seccomp: 2"
	if got != want {
		t.Errorf("the init of a uid 1000 container with ambient NET_BIND_SERVICE: %q (%s), want %q", got, r.Stderr, want)
	}
	for _, tc := range []struct {
		name, field string
		code        codes.Code
		edit        func(*runtime.ContainerConfig)
	}{
		{"device permissions", "devices", codes.InvalidArgument, func(c *runtime.ContainerConfig) {
			c.Devices = []*runtime.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mynull", Permissions: "rwx"}}
		}},
		{"device a regular file", "/etc/passwd", codes.InvalidArgument, func(c *runtime.ContainerConfig) {
			c.Devices = []*runtime.Device{{HostPath: "/etc/passwd", ContainerPath: "/dev/passwd", Permissions: "r"}}
		}},
		{"cdi", "cdi_devices", codes.Unimplemented, func(c *runtime.ContainerConfig) {
			c.CDIDevices = []*runtime.CDIDevice{{Name: "vendor.com/gpu=0"}}
		}},
		{"env", "envs", codes.InvalidArgument, func(c *runtime.ContainerConfig) {
			c.Envs = []*runtime.KeyValue{{Key: "BAD", Value: []byte("caf\xe9")}}
		}},
	} {
		cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "refused-" + tc.name},
			Image: &runtime.ImageSpec{Image: busyboxImage}, Command: []string{"true"}}
		tc.edit(cfg)
		_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg, Config: cfg})
		if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want %v naming %s", tc.name, err, tc.code, tc.field)
		}
	}
	list, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: pod}})
	if err != nil || len(list.Containers) != 1 {
		t.Errorf("containers after refused creates: %d %v", len(list.GetContainers()), err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
