package integration

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
	"github.com/berth-cri/berth/test/wait"
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
	if links := nsenter(t, "--net="+netns, "ip", "-o", "link"); !strings.Contains(links, " lo: <LOOPBACK,UP") || !strings.Contains(links, " eth0@") {
		t.Fatalf("pod netns links (want lo up and eth0):\n%s", links)
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

func podIP(t *testing.T, rc runtime.RuntimeServiceClient, id string) string {
	t.Helper()
	st, err := rc.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		t.Fatal(err)
	}
	return st.Status.GetNetwork().GetIp()
}

// Pods get addresses on the test bridge, reach each other, and leave no lease,
// veth or attachment behind when removed.
func TestPodNetwork(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	_, subnet, _ := net.ParseCIDR(util.TestSubnet)
	var ids, ips []string
	for _, name := range []string{"a", "b"} {
		resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig(name)})
		if err != nil {
			t.Fatalf("run pod %s: %v\n%s", name, err, b.Log())
		}
		ip := podIP(t, rc, resp.PodSandboxId)
		if !subnet.Contains(net.ParseIP(ip)) {
			t.Fatalf("pod %s IP %q is not in %s", name, ip, util.TestSubnet)
		}
		ids, ips = append(ids, resp.PodSandboxId), append(ips, ip)
	}
	netnsA := filepath.Join(b.State, "pods", ids[0], "ns", "net")
	nsenter(t, "--net="+netnsA, "ping", "-c", "1", "-W", "5", ips[1])

	// A restart keeps the addresses (the attachment is in the pod record).
	b.Signal(t, syscall.SIGTERM, 20*time.Second)
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	if got := podIP(t, rc, ids[1]); got != ips[1] {
		t.Fatalf("IP after restart %q, want %q", got, ips[1])
	}

	for _, id := range ids {
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	assertNetworkClean(t, b)
}

// assertNetworkClean checks that no IP lease, cached attachment, veth on
// the test bridge or nat rule for the test subnet is left.
func assertNetworkClean(t *testing.T, b *util.Berthd) {
	t.Helper()
	if left := util.NetworkLeftovers(b, nil); len(left) > 0 {
		t.Fatalf("network left:\n%s", strings.Join(left, "\n"))
	}
}

// failpointPlugin fails every ADD and accepts everything else.
const failpointPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) echo '{"cniVersion":"1.0.0","code":999,"msg":"failpoint: ADD refused"}'; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`

// pluginNetwork gives b a CNI network named name: the test bridge (with
// masquerading, as the default network has it, if masq), then a plugin of
// the test's own (script, installed as plugin), in a bin dir of its own
// (returned) beside the real bridge, host-local and loopback.
func pluginNetwork(t *testing.T, b *util.Berthd, name, plugin, script string, masq bool) (binDir string) {
	t.Helper()
	binDir, confDir := filepath.Join(b.Dir, "cni-bin"), filepath.Join(b.Dir, "net.d")
	for _, d := range []string{binDir, confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if err := os.Symlink("/opt/cni/bin/"+p, filepath.Join(binDir, p)); err != nil {
			t.Fatal(err)
		}
	}
	conf := `{"cniVersion":"1.0.0","name":"` + name + `","plugins":[
		{"type":"bridge","bridge":"` + util.TestBridge + `","ipMasq":` + strconv.FormatBool(masq) + `,"ipam":{"type":"host-local","subnet":"` + util.TestSubnet +
		`","dataDir":"` + filepath.Join(b.Root, "cni", "networks") + `"}},
		{"type":"` + plugin + `"}]}`
	if err := os.WriteFile(filepath.Join(binDir, plugin), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-"+name+".conflist"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return binDir
}

// A pod whose network ADD fails leaves nothing: no pod, no pin, no lease.
func TestFailedAttachLeavesNothing(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	binDir := pluginNetwork(t, b, "failnet", "failpoint", failpointPlugin, true)
	b.DropIn(t, "10-cni.toml", "[cni]\nbin_dirs = [\""+binDir+"\"]\n")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	_, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("doomed")})
	if err == nil || !strings.Contains(err.Error(), "failpoint") {
		t.Fatalf("run with a failing plugin = %v", err)
	}
	list, _ := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{})
	if len(list.GetItems()) != 0 {
		t.Fatalf("pods left: %v", list.Items)
	}
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
	assertNetworkClean(t, b)
}

// gatePlugin marks its ADD started (<gate>.started), then waits until
// <gate>.open exists and fails; it accepts everything else.
const gatePlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) touch "%[1]s.started"; while [ ! -e "%[1]s.open" ]; do sleep 0.05; done; exit 1 ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`

// berthd killed in the middle of a pod's network ADD (after the bridge
// plugin attached the pod and masqueraded its address, before libcni cached
// the attachment): once it is back, the pod is gone, and so are its mounts,
// lease, veth and nat rules.
func TestKilledDuringAttachLeavesNothing(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	gate := filepath.Join(b.Dir, "gate")
	binDir := pluginNetwork(t, b, "gatenet", "gate", fmt.Sprintf(gatePlugin, gate), true)
	b.DropIn(t, "10-cni.toml", "[cni]\nbin_dirs = [\""+binDir+"\"]\n")
	t.Cleanup(func() { os.WriteFile(gate+".open", nil, 0o600) })
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	go rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("cut")})
	wait.ForFile(t, gate+".started")
	if nat, _ := exec.Command("iptables", "-w", "-t", "nat", "-S").Output(); !strings.Contains(string(nat), strings.TrimSuffix(util.TestSubnet, "0/24")) {
		t.Fatalf("the bridge plugin masqueraded nothing before the gate: the test proves nothing\n%s", nat)
	}
	b.Kill(t)
	if err := os.WriteFile(gate+".open", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	list, err := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{})
	if err != nil || len(list.GetItems()) != 0 {
		t.Fatalf("pods after the restart: %v, %v; want the cut one removed", list.GetItems(), err)
	}
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
	assertNetworkClean(t, b)
}

// A crash between the ADD and the pod's record (simulated by losing the
// record while berthd is down) leaves an attachment that the next start
// detaches.
func TestAttachmentOfLostPodIsReleased(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("lost")})
	if err != nil {
		t.Fatal(err)
	}
	b.Kill(t)
	if err := os.Remove(filepath.Join(b.Root, "pods", resp.PodSandboxId+".json")); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	assertNetworkClean(t, b)
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("the lost pod's mounts were not cleaned: %v", m)
	}
}

// Many pods in and out: nothing accumulates.
func TestManyPodsLeaveNothing(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	for i := 0; i < 50; i++ {
		resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig(fmt.Sprintf("p%d", i))})
		if err != nil {
			t.Fatalf("pod %d: %v", i, err)
		}
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
			t.Fatalf("remove pod %d: %v", i, err)
		}
	}
	assertNetworkClean(t, b)
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("mounts left: %v", m)
	}
}

// listenIn opens a TCP listener inside a network namespace (the socket stays
// in it after the thread returns to the host's namespace).
func listenIn(t *testing.T, netns string, port int) net.Listener {
	t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		goruntime.LockOSThread()
		own, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer unix.Close(own)
		target, err := unix.Open(netns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			done <- result{err: err}
			return
		}
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if unix.Setns(own, unix.CLONE_NEWNET) == nil {
			goruntime.UnlockOSThread()
		}
		done <- result{l, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.l.Close() })
	go func() {
		for {
			c, err := r.l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the pod\n"))
			c.Close()
		}
	}()
	return r.l
}

// A hostPort mapping reaches the pod from the host's loopback.
func TestHostPort(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	const hostPort = 12099
	cfg := podConfig("web")
	cfg.PortMappings = []*runtime.PortMapping{{Protocol: runtime.Protocol_TCP, ContainerPort: 8080, HostPort: hostPort}}
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	listenIn(t, filepath.Join(b.State, "pods", resp.PodSandboxId, "ns", "net"), 8080)
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), 5*time.Second)
	if err != nil {
		t.Fatalf("dial the host port: %v", err)
	}
	line, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if line != "hello from the pod\n" {
		t.Fatalf("read %q through the host port", line)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	assertNetworkClean(t, b)
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), time.Second); err == nil {
		t.Fatal("the host port still answers after the pod is gone")
	}
}

// An address allocated by a crash in the middle of an ADD (no cached
// attachment, no record) is freed at the next start by CNI GC.
func TestGCFreesUncachedLeases(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("keep")})
	if err != nil {
		t.Fatal(err)
	}
	keepIP := podIP(t, rc, resp.PodSandboxId)
	b.Kill(t)
	ghost := filepath.Join(b.Root, "cni", "networks", "berth-default", "10.201.0.250")
	if err := os.WriteFile(ghost, []byte("ghost-pod\r\neth0"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	if _, err := os.Stat(ghost); !os.IsNotExist(err) {
		t.Fatalf("the ghost lease survived the start: %v", err)
	}
	if _, err := os.Stat(filepath.Join(b.Root, "cni", "networks", "berth-default", keepIP)); err != nil {
		t.Fatalf("the live pod's lease was freed: %v", err)
	}
}
