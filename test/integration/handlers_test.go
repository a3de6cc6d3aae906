package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

const handlersDropIn = "[runtime_handlers.test-handler]\n[runtime_handlers.sandboxed]\nprivileged_without_host_devices = true\n"

// Runtime handlers from berth.toml: Status lists them, pods run on them and
// report them, an unknown one is refused with nothing left, and
// privileged_without_host_devices keeps the host's devices from a privileged
// container: none is there, and one it makes itself cannot be opened. A pod
// whose handler is dropped from the config gets no new container.
func TestRuntimeHandlers(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, mirrorConfig(testRegistry(t)))
	b.DropIn(t, "20-handlers.toml", handlersDropIn)
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	st, err := rc.Status(ctxT(t), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range st.GetRuntimeHandlers() {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"", "sandboxed", "test-handler"}) {
		t.Fatalf("Status lists handlers %q", names)
	}
	_, err = rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("nohandler"), RuntimeHandler: "kata"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "kata") {
		t.Fatalf("a pod on an unknown handler = %v, want InvalidArgument naming it", err)
	}
	if list, _ := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{}); len(list.GetItems()) != 0 {
		t.Fatalf("pods after a refused run: %v", list.GetItems())
	}
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage, RuntimeHandler: "sandboxed"}}); err != nil {
		t.Fatalf("pull for a configured handler: %v", err)
	}

	plain := privilegedOn(t, rc, "test-handler")
	sandboxed := privilegedOn(t, rc, "sandboxed")
	if r := execSync(t, rc, plain, "ls", "/dev"); !strings.Contains(string(r.Stdout), "kmsg") {
		t.Fatalf("a privileged container of test-handler lacks the host's devices:\n%s", r.Stdout)
	}
	if r := execSync(t, rc, sandboxed, "ls", "/dev"); strings.Contains(string(r.Stdout), "kmsg") {
		t.Fatalf("a privileged container of the sandboxed handler has the host's devices:\n%s", r.Stdout)
	}
	// It may make a node (it has CAP_MKNOD), but the device cgroup does not
	// let it open one.
	r := execSync(t, rc, sandboxed, "sh", "-c", "mknod /tmp/lc c 10 237 && exec 3</tmp/lc")
	if r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "not permitted") {
		t.Fatalf("the sandboxed handler's privileged container opened a device node it made: exit %d, %s", r.ExitCode, r.Stderr)
	}

	b.Kill(t)
	if err := os.Remove(filepath.Join(b.Dir, "berth.d", "20-handlers.toml")); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	pods, err := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.GetItems() {
		if p.RuntimeHandler != "test-handler" {
			continue
		}
		_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: p.Id, SandboxConfig: podConfig("test-handler"),
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "late"}, Image: &runtime.ImageSpec{Image: busyboxImage},
				Command: []string{"true"}, LogPath: "late.log"}})
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "test-handler") {
			t.Fatalf("a container in a pod whose handler is gone = %v, want FailedPrecondition naming it", err)
		}
		return
	}
	t.Fatalf("no pod on test-handler after the restart: %v", pods.GetItems())
}

// privilegedOn runs a privileged pod on handler, with a privileged sleeping
// container, and checks that the pod reports its handler.
func privilegedOn(t *testing.T, rc runtime.RuntimeServiceClient, handler string) string {
	t.Helper()
	cfg := podConfig(handler)
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: cfg, RuntimeHandler: handler})
	if err != nil {
		t.Fatalf("a pod on %s: %v", handler, err)
	}
	st, err := rc.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId})
	if err != nil || st.GetStatus().GetRuntimeHandler() != handler {
		t.Fatalf("status of the pod on %s: %v, %v", handler, st.GetStatus(), err)
	}
	return startContainer(t, rc, resp.PodSandboxId, cfg, "priv", func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}}
	}, "sleep", "100000")
}
