package integration

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// crictl exec: output, stderr and exit code; exec -s (ExecSync); stdin; a
// terminal (crictl run under script(1), which gives it one).
func TestExecSessions(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("exec")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	var stdout, stderr strings.Builder
	cmd := crictlCmd(t, b, "exec", id, "sh", "-c", "echo out; echo err >&2; exit 3")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run() // crictl reports the exit code in a message and exits 1
	if err == nil || stdout.String() != "out\n" || !strings.Contains(stderr.String(), "err\n") ||
		!strings.Contains(stderr.String(), "exit code 3") {
		t.Errorf("exec: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	// crictl prints ExecSync's stdout and stderr, each followed by a newline.
	if out, err := crictlCmd(t, b, "exec", "-s", id, "echo", "synced").Output(); err != nil || strings.TrimSpace(string(out)) != "synced" {
		t.Errorf("exec -s (ExecSync): %q, %v", out, err)
	}
	cmd = crictlCmd(t, b, "exec", "-i", id, "sh", "-c", "cat; echo done")
	cmd.Stdin = strings.NewReader("hello\nworld\n")
	if out, err := cmd.Output(); err != nil || string(out) != "hello\nworld\ndone\n" {
		t.Errorf("exec with stdin: %q, %v", out, err)
	}
	line := fmt.Sprintf("%s --runtime-endpoint unix://%s exec -it %s sh -c 'tty; stty size'", os.Getenv("CRICTL"), b.Socket, id)
	out, err := exec.Command("script", "-qec", "stty cols 123 rows 45; "+line, "/dev/null").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "/dev/pts/") || !strings.Contains(string(out), "45 123") {
		t.Errorf("exec with a terminal: %q, %v", out, err)
	}
	if _, err := rc.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("exec without a stream: %v", err)
	}
	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("exec in an exited container: %v", err)
	}
	removeLeavingNoSessions(t, b, rc, pod)
}

// crictl attach: stdin into a shell (stdin_once: the container ends with the
// session's stdin); two sessions on a container's output at once, detaching
// leaves it running.
func TestAttachSessions(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("attach")
	pod := runPod(t, rc, podCfg)
	shell := startContainer(t, rc, pod, podCfg, "shell", func(c *runtime.ContainerConfig) { c.Stdin, c.StdinOnce = true, true }, "sh")
	cmd := crictlCmd(t, b, "attach", "-i", shell)
	cmd.Stdin = strings.NewReader("echo hello from $((6*7))\n")
	if out, err := cmd.Output(); err != nil || string(out) != "hello from 42\n" {
		t.Errorf("attach to a shell: %q, %v", out, err)
	}
	if st := waitExited(t, rc, shell); st.ExitCode != 0 {
		t.Errorf("the shell after its stdin closed: %+v", st)
	}
	ticker := startContainer(t, rc, pod, podCfg, "ticker", nil, "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	// Both sessions at once, each until it has seen 5 ticks (or the call
	// timeout passed: emulated VMs are slow).
	var cmds [2]*exec.Cmd
	var seen [2]chan string
	for i := range cmds {
		cmds[i] = crictlCmd(t, b, "attach", ticker)
		out, err := cmds[i].StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
		seen[i] = make(chan string, 1)
		go func() { seen[i] <- firstTicks(out, 5) }()
	}
	ctx := ctxT(t)
	for i, c := range cmds {
		select {
		case got := <-seen[i]:
			if n := strings.Count(got, "tick "); n < 5 {
				t.Errorf("attached session %d saw %d ticks before its output ended:\n%s", i, n, got)
			}
		case <-ctx.Done():
			t.Errorf("attached session %d saw fewer than 5 ticks in %v", i, util.CallTimeout())
		}
		c.Process.Kill() // detach
		c.Wait()
	}
	time.Sleep(300 * time.Millisecond)
	if st := containerStatus(t, rc, ticker); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the container after its sessions detached: %v", st.State)
	}
	removeLeavingNoSessions(t, b, rc, pod)
}

// firstTicks reads lines of r until n of them are ticks or r ends, and
// returns what it read.
func firstTicks(r io.Reader, n int) string {
	var got strings.Builder
	sc := bufio.NewScanner(r)
	for ticks := 0; ticks < n && sc.Scan(); {
		got.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "tick ") {
			ticks++
		}
	}
	return got.String()
}

// Two subscribers get a container's whole lifecycle as events, in order,
// with the pod's status and the containers' statuses.
func TestContainerEvents(t *testing.T) {
	_, _, rc := containerBerthd(t)
	podCfg := podConfig("events")
	pod := runPod(t, rc, podCfg)
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	var subs []runtime.RuntimeService_GetContainerEventsClient
	for range 2 {
		sub, err := rc.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// berthd sends the headers once the subscription is made.
		if _, err := sub.Header(); err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	id := startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	want := []runtime.ContainerEventType{runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerEventType_CONTAINER_DELETED_EVENT}
	for i, sub := range subs {
		for j, w := range want {
			ev, err := sub.Recv()
			if err != nil {
				t.Fatalf("subscriber %d, event %d: %v", i, j, err)
			}
			if ev.ContainerId != id || ev.ContainerEventType != w || ev.GetPodSandboxStatus().GetId() != pod || ev.CreatedAt == 0 {
				t.Fatalf("subscriber %d, event %d: %v %v (pod %q), want %v", i, j, ev.ContainerId, ev.ContainerEventType,
					ev.GetPodSandboxStatus().GetId(), w)
			}
			if w == runtime.ContainerEventType_CONTAINER_STARTED_EVENT &&
				(len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].State != runtime.ContainerState_CONTAINER_RUNNING) {
				t.Fatalf("statuses with the started event: %v", ev.ContainersStatuses)
			}
		}
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
}

// With a certificate configured, sessions are served over HTTPS.
func TestStreamingOverTLS(t *testing.T) {
	bin := util.RequireIntegration(t)
	certFile, keyFile := selfSignedCert(t)
	b := util.NewBerthd(t, fmt.Sprintf("[streaming]\ntls_cert_file = %q\ntls_key_file = %q\n\n%s", certFile, keyFile, mirrorConfig(testRegistry(t))))
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}}); err != nil {
		t.Fatal(err)
	}
	podCfg := podConfig("tls")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	resp, err := rc.Exec(ctxT(t), &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err != nil || !strings.HasPrefix(resp.Url, "https://") {
		t.Fatalf("exec URL %v, %v", resp, err)
	}
	if out, err := crictlCmd(t, b, "exec", id, "echo", "over-tls").Output(); err != nil || string(out) != "over-tls\n" {
		t.Errorf("exec over TLS: %q, %v", out, err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSignedCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth-test"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for file, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// removeLeavingNoSessions removes the pod and checks that nothing of it nor
// of its sessions' FIFOs remains.
func removeLeavingNoSessions(t *testing.T, b *util.Berthd, rc runtime.RuntimeServiceClient, pod string) {
	t.Helper()
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
	if entries, _ := os.ReadDir(filepath.Join(b.State, "io")); len(entries) != 0 {
		t.Errorf("session FIFOs left: %d", len(entries))
	}
}
