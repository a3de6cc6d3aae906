package integration

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/test/util"
)

// waitLogLine waits until berthd's log has a line holding every part.
func waitLogLine(t *testing.T, b *util.Berthd, parts ...string) string {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		for _, line := range strings.Split(b.Log(), "\n") {
			found := true
			for _, p := range parts {
				found = found && strings.Contains(line, p)
			}
			if found {
				return line
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("berthd never logged a line with %q", parts)
		}
	}
}

// A CreateContainer whose caller gives up while the pod's shim creates the
// container (its log is a FIFO that no one reads yet, so the shim waits in
// its open) leaves no container in the shim, and the name is free again.
func TestCreateTimeoutLeavesNoContainerInShim(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("slowcreate")
	podCfg.LogDirectory = filepath.Join(b.Dir, "podlogs")
	if err := os.MkdirAll(podCfg.LogDirectory, 0o755); err != nil {
		t.Fatal(err)
	}
	pod := runPod(t, rc, podCfg)
	fifo := filepath.Join(podCfg.LogDirectory, "c.log")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c"},
		Image: &runtime.ImageSpec{Image: busyboxImage}, Command: []string{"sleep", "1000"}, LogPath: "c.log"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err := rc.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("create with a log no one reads = %v, want DeadlineExceeded", err)
	}
	// A reader lets the shim's open, and its create, go on.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	waitLogLine(t, b, `msg="rpc failed"`, "rpc=CreateContainer") // the call's end, rollback done
	shim, err := runner.Dial(ctxT(t), filepath.Join(b.State, "shims", pod, "shim.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	if ids, err := shim.List(ctxT(t)); err != nil || len(ids) != 0 {
		t.Fatalf("containers left in the shim: %v, %v", ids, err)
	}
	// The create had reached the shim: berthd found the container there.
	if !strings.Contains(b.Log(), "deleted from the pod's shim the container of a failed create") {
		t.Fatal("the create never reached the shim: the test proved nothing")
	}
	if m := util.MountsUnder(filepath.Join(b.State, "containers")); len(m) != 0 {
		t.Fatalf("rootfs mounts left: %v", m)
	}
	cfg.LogPath = "c-retry.log"
	if _, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg}); err != nil {
		t.Fatalf("the kubelet's retry with the name: %v", err)
	}
}

// hangPlugin hangs on ADD in a child of its own, which must not outlive the
// plugin's deadline; it accepts everything else.
const hangPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) sleep 1000 & echo $! > "%s"; wait ;;
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}' ;;
esac
exit 0
`

// A CNI plugin that hangs on ADD fails RunPodSandbox at cni.plugin_timeout
// with DeadlineExceeded: the plugin and its children are killed, the bridge
// plugin's work before it is undone, nothing is left and the name is free.
func TestHungCNIPluginTimesOut(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	pidFile := filepath.Join(b.Dir, "hang.pid")
	// No masquerading: under emulation (the VM), the bridge plugin's
	// iptables work alone can take the 3 s deadline.
	binDir := pluginNetwork(t, b, "hangnet", "hang", strings.Replace(hangPlugin, "%s", pidFile, 1), false)
	b.DropIn(t, "10-cni.toml", "[cni]\nbin_dirs = [\""+binDir+"\"]\nplugin_timeout = \"3s\"\n")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	_, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("hung")})
	if status.Code(err) != codes.DeadlineExceeded || !strings.Contains(err.Error(), "hang") {
		t.Fatalf("run with a hanging plugin = %v, want DeadlineExceeded naming the plugin", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the hanging plugin never ran: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	waitGone(t, pid, true)
	list, _ := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{})
	if len(list.GetItems()) != 0 {
		t.Fatalf("pods left: %v", list.Items)
	}
	if m := util.MountsUnder(b.Dir); len(m) != 0 {
		t.Fatalf("mounts left (netns pins?): %v", m)
	}
	assertNetworkClean(t, b)
	// The name is free: a retry runs the plugins again (and times out again).
	_, err = rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: podConfig("hung")})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("the retry = %v, want DeadlineExceeded again (AlreadyExists: the name stayed reserved)", err)
	}
}

// podCIDRSubnet is a subnet of the tests' own, beside util.TestSubnet.
const podCIDRSubnet = "10.202.0.0/24"

// With cni.default_subnet left empty, the default network allocates from the
// pod CIDR the kubelet gives (UpdateRuntimeConfig), also after a restart.
func TestUpdateRuntimeConfigPodCIDR(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	data, err := os.ReadFile(b.Config)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, "default_subnet") {
			kept = append(kept, l)
		}
	}
	os.WriteFile(b.Config, []byte(strings.Join(kept, "\n")), 0o644)
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	update := func(cidr string) error {
		_, err := rc.UpdateRuntimeConfig(ctxT(t), &runtime.UpdateRuntimeConfigRequest{
			RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}}})
		return err
	}
	if err := update("10.202.0.0/33"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("malformed pod CIDR = %v, want InvalidArgument", err)
	}
	if err := update(""); err != nil {
		t.Fatalf("empty pod CIDR: %v", err)
	}
	if err := update(podCIDRSubnet); err != nil {
		t.Fatal(err)
	}
	_, subnet, _ := net.ParseCIDR(podCIDRSubnet)
	for i, restart := range []bool{false, true} {
		if restart {
			b.Kill(t)
			b.Start(t, bin)
			rc, _ = b.Clients(t)
		}
		pod := runPod(t, rc, podConfig("cidr"+strconv.Itoa(i)))
		if ip := net.ParseIP(podIP(t, rc, pod)); !subnet.Contains(ip) {
			t.Fatalf("pod IP %v is not in the pod CIDR %s (restarted: %v)", ip, subnet, restart)
		}
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
			t.Fatal(err)
		}
	}
}
