package integration

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// crictlCmd is a crictl command against berthd (the test skips without
// CRICTL).
func crictlCmd(t *testing.T, b *util.Berthd, args ...string) *exec.Cmd {
	t.Helper()
	crictl := os.Getenv("CRICTL")
	if crictl == "" {
		t.Skip("set CRICTL to a crictl binary (make test does)")
	}
	return exec.Command(crictl, append([]string{"--runtime-endpoint", "unix://" + b.Socket, "--timeout", "30s"}, args...)...)
}

// freePort is a TCP port free on the host's loopback right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// forwardAndGet runs crictl port-forward to the pod's port and fetches / through
// it.
func forwardAndGet(t *testing.T, b *util.Berthd, pod string, port int) string {
	t.Helper()
	local := freePort(t)
	cmd := crictlCmd(t, b, "port-forward", pod, fmt.Sprintf("%d:%d", local, port))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", local))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("port-forward to %s:%d: %v\ncrictl: %s", pod, port, err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Port-forward reaches a server on the pod's loopback, in a pod of its own
// network and in a hostNetwork pod.
func TestPortForward(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("forward")
	pod := runPod(t, rc, podCfg)
	startContainer(t, rc, pod, podCfg, "web", nil, "sh", "-c",
		"mkdir /www && echo pod-page > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www")
	if got := forwardAndGet(t, b, pod, 8080); got != "pod-page\n" {
		t.Errorf("through port-forward: %q", got)
	}
	hostPort := freePort(t)
	hostCfg := podConfig("forwardhost")
	hostCfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}}
	hostPod := runPod(t, rc, hostCfg)
	startContainer(t, rc, hostPod, hostCfg, "web", nil, "sh", "-c",
		fmt.Sprintf("mkdir /www && echo host-page > /www/index.html && exec httpd -f -p 127.0.0.1:%d -h /www", hostPort))
	if got := forwardAndGet(t, b, hostPod, hostPort); got != "host-page\n" {
		t.Errorf("through port-forward in a hostNetwork pod: %q", got)
	}
	if _, err := rc.PortForward(ctxT(t), &runtime.PortForwardRequest{PodSandboxId: "nonesuch", Port: []int32{80}}); err == nil {
		t.Error("port-forward to a missing pod")
	}
	for _, p := range []string{pod, hostPod} {
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p}); err != nil {
			t.Fatal(err)
		}
	}
	assertPodGone(t, b, pod, hostPod)
}
