package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

func podConfig(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:  &runtime.PodSandboxMetadata{Name: name, Namespace: "it", Uid: "uid-" + name},
		Hostname:  "test-hostname",
		DnsConfig: &runtime.DNSConfig{Servers: []string{"10.10.10.10"}, Searches: []string{"google.com"}, Options: []string{"ndots:8"}},
		Labels:    map[string]string{"test": name},
	}
}

func nsenter(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func podState(t *testing.T, rc runtime.RuntimeServiceClient, id string) runtime.PodSandboxState {
	t.Helper()
	st, err := rc.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.State
}

func TestPodSandboxLifecycle(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("web")})
	if err != nil {
		t.Fatal(err)
	}
	id := resp.PodSandboxId
	if podState(t, rc, id) != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatal("pod not READY")
	}
	podDir := filepath.Join(b.State, "pods", id)
	netns, uts := filepath.Join(podDir, "ns", "net"), filepath.Join(podDir, "ns", "uts")
	if links := nsenter(t, "--net="+netns, "ip", "-o", "link"); strings.Count(links, "\n") != 0 || !strings.Contains(links, " lo:") {
		t.Fatalf("pod netns links:\n%s", links)
	}
	if h := nsenter(t, "--uts="+uts, "hostname"); h != "test-hostname" {
		t.Fatalf("pod hostname %q", h)
	}
	resolv, _ := os.ReadFile(filepath.Join(podDir, "resolv.conf"))
	for _, want := range []string{"nameserver 10.10.10.10", "search google.com", "options ndots:8"} {
		if !strings.Contains(string(resolv), want) {
			t.Fatalf("resolv.conf lacks %q:\n%s", want, resolv)
		}
	}
	mounts := util.MountsUnder(b.Dir)
	if len(mounts) != 4 { // net, ipc, uts pins and shm
		t.Fatalf("mounts %v, want 3 pins and shm", mounts)
	}

	// Restarts, graceful and not, keep the pod as it was.
	b.Signal(t, syscall.SIGTERM, 20*time.Second)
	b.Start(t, bin)
	b.Kill(t)
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	if podState(t, rc, id) != runtime.PodSandboxState_SANDBOX_READY || len(util.MountsUnder(b.Dir)) != 4 {
		t.Fatalf("after restarts: state %v, mounts %v", podState(t, rc, id), util.MountsUnder(b.Dir))
	}
	if _, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("web")}); err == nil {
		t.Fatal("the name was not kept reserved across the restart")
	}

	if _, err := rc.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if podState(t, rc, id) != runtime.PodSandboxState_SANDBOX_NOTREADY {
		t.Fatal("pod not NOTREADY after stop")
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("mounts left after remove: %v", m)
	}
	if _, err := os.Stat(podDir); !os.IsNotExist(err) {
		t.Fatalf("pod dir left: %v", err)
	}
	list, err := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("list after remove = %v, %v", list, err)
	}
}

func TestHostNetworkPod(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	cfg := podConfig("hostnet")
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE},
	}}
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("a host-namespace pod pinned or mounted %v", m)
	}
	st, err := rc.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: resp.PodSandboxId})
	if err != nil || st.Status.Linux.Namespaces.Options.Network != runtime.NamespaceMode_NODE {
		t.Fatalf("status = %v, %v", st, err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
}
