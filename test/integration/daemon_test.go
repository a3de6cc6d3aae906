package integration

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
	"github.com/berth-cri/berth/test/wait"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), util.CallTimeout())
	t.Cleanup(cancel)
	return ctx
}

func conditionsOf(t *testing.T, rc runtime.RuntimeServiceClient, verbose bool) (map[string]*runtime.RuntimeCondition, map[string]string) {
	t.Helper()
	resp, err := rc.Status(ctxT(t), &runtime.StatusRequest{Verbose: verbose})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*runtime.RuntimeCondition{}
	for _, c := range resp.Status.Conditions {
		m[c.Type] = c
	}
	return m, resp.Info
}

func TestVersionStatusRuntimeConfig(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)

	v, err := rc.Version(ctxT(t), &runtime.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != "0.1.0" || v.RuntimeName != "berth" || v.RuntimeApiVersion != "v1" || v.RuntimeVersion == "" {
		t.Fatalf("Version = %v", v)
	}

	conds, info := conditionsOf(t, rc, true)
	if !conds[runtime.RuntimeReady].GetStatus() {
		t.Fatalf("RuntimeReady = %v", conds[runtime.RuntimeReady])
	}
	if !conds[runtime.NetworkReady].GetStatus() {
		t.Fatalf("NetworkReady = %v (are the CNI plugins in /opt/cni/bin? run hack/install-deps.sh)", conds[runtime.NetworkReady])
	}
	if !strings.Contains(info["config"], `"root":"`+b.Root+`"`) || !strings.Contains(info["config"], `"default_bridge":"`+util.TestBridge+`"`) {
		t.Fatalf("Status(verbose) info[config] = %s", info["config"])
	}

	rcfg, err := rc.RuntimeConfig(ctxT(t), &runtime.RuntimeConfigRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if rcfg.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("RuntimeConfig = %v, want CGROUPFS", rcfg)
	}
}

func TestNetworkNotReadyWithoutPlugins(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	emptyBin := filepath.Join(b.Dir, "cni-bin")
	os.MkdirAll(emptyBin, 0o755)
	b.DropIn(t, "10-cni.toml", "[cni]\nbin_dirs = [\""+emptyBin+"\"]\n")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	conds, _ := conditionsOf(t, rc, false)
	n := conds[runtime.NetworkReady]
	if n.GetStatus() || n.Reason != "NetworkPluginNotReady" || !strings.Contains(n.Message, emptyBin) {
		t.Fatalf("NetworkReady = %v, want false, NetworkPluginNotReady, naming %s", n, emptyBin)
	}
	if !conds[runtime.RuntimeReady].GetStatus() {
		t.Fatal("RuntimeReady false")
	}
}

func TestUnimplementedRPCsSaySo(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	ctx := ctxT(t)
	calls := map[string]error{}
	_, calls["RestorePod"] = rc.RestorePod(ctx, &runtime.RestorePodRequest{})
	_, calls["CheckpointContainer"] = rc.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{})
	_, calls["CheckpointPod"] = rc.CheckpointPod(ctx, &runtime.CheckpointPodRequest{})
	for rpc, err := range calls {
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), rpc) {
			t.Errorf("%s: %v, want Unimplemented naming the RPC", rpc, err)
		}
	}
}

func TestSecondInstanceRefuses(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	// Same root, another socket: the root lock must refuse it.
	args := b.Args()
	args[len(args)-3] = filepath.Join(b.Dir, "other.sock")
	code, out := util.Run(t, bin, args...)
	if code == 0 || !strings.Contains(out, "already running") || !strings.Contains(out, b.Root) {
		t.Fatalf("second berthd: exit %d, output %q; want a refusal naming the root", code, out)
	}
	// The first one still serves.
	rc, _ := b.Clients(t)
	if _, err := rc.Version(ctxT(t), &runtime.VersionRequest{}); err != nil {
		t.Fatalf("first berthd stopped answering: %v", err)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	bin := util.RequireIntegration(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			b := util.NewBerthd(t, "")
			b.Start(t, bin)
			if code := b.Signal(t, sig, 20*time.Second); code != 0 {
				t.Fatalf("exit code %d after %v, want 0\n%s", code, sig, b.Log())
			}
			if _, err := os.Lstat(b.Socket); !os.IsNotExist(err) {
				t.Fatalf("socket left behind after %v: %v", sig, err)
			}
		})
	}
}

func TestRestartAfterCrashReplacesStaleSocket(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	b.Kill(t)
	if _, err := os.Lstat(b.Socket); err != nil {
		t.Fatalf("a SIGKILLed berthd should leave its socket file: %v", err)
	}
	b.Start(t, bin)
	rc, _ := b.Clients(t)
	if _, err := rc.Version(ctxT(t), &runtime.VersionRequest{}); err != nil {
		t.Fatalf("restarted berthd does not answer: %v", err)
	}
}

func TestBadConfigExitsNaming(t *testing.T) {
	bin := util.RequireIntegration(t)
	tests := []struct {
		name, toml string
		want       []string
	}{
		{"unknown key", "root_dir = \"/x\"\n", []string{"unknown key", "root_dir"}},
		{"wrong type", "[cni]\ndefault_network = \"yes\"\n", []string{"cni.default_network"}},
		{"bad path", "[cni]\nconf_dir = \"etc/cni\"\n", []string{"cni.conf_dir", "etc/cni", "absolute"}},
		{"bad value", "log_format = \"xml\"\n", []string{"log_format", "xml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := util.NewBerthd(t, "")
			os.WriteFile(b.Config, []byte(tt.toml), 0o644)
			code, out := util.Run(t, bin, b.Args()...)
			if code == 0 {
				t.Fatalf("berthd accepted a bad config: %s", out)
			}
			for _, w := range append(tt.want, b.Config) {
				if !strings.Contains(out, w) {
					t.Errorf("output %q does not name %q", out, w)
				}
			}
			if _, err := os.Lstat(b.Socket); !os.IsNotExist(err) {
				t.Errorf("berthd created its socket despite a bad config")
			}
		})
	}
}

func TestDropInOverrides(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "log_format = \"text\"\n")
	b.DropIn(t, "10-json.toml", "log_format = \"json\"\n")
	b.Start(t, bin)
	b.Signal(t, syscall.SIGTERM, 20*time.Second)
	if !strings.Contains(b.Log(), `"msg":"berthd starting"`) {
		t.Fatalf("drop-in log_format=json not applied; log:\n%s", b.Log())
	}
}

func TestCrictl(t *testing.T) {
	bin := util.RequireIntegration(t)
	crictl := os.Getenv("CRICTL")
	if crictl == "" {
		t.Skip("set CRICTL to a crictl binary (make test does)")
	}
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	run := func(args ...string) string {
		out, err := exec.Command(crictl, append([]string{"--runtime-endpoint", "unix://" + b.Socket, "--timeout", "10s"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("crictl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("version"); !strings.Contains(out, "RuntimeName:  berth") || !strings.Contains(out, "Version:  0.1.0") {
		t.Fatalf("crictl version:\n%s", out)
	}
	out := run("info")
	if !strings.Contains(out, `"type": "RuntimeReady"`) || !strings.Contains(out, `"status": true`) {
		t.Fatalf("crictl info:\n%s", out)
	}
}

func TestRefusesToRunAsNonRoot(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	// setpriv (util-linux) drops to nobody without a shell in between.
	code, out := util.Run(t, "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, b.Args()...)...)
	if code == 0 || !strings.Contains(out, "must run as root") {
		t.Fatalf("berthd as nobody: exit %d, %q", code, out)
	}
	// Commands that need no privileges still work.
	code, out = util.Run(t, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "config", "default")
	if code != 0 || !strings.Contains(out, "[cni]") {
		t.Fatalf("berthd config default as nobody: exit %d, %q", code, out)
	}
}

// Under systemd (a Type=notify unit: $NOTIFY_SOCKET), berthd says READY=1
// once its CRI socket answers, and STOPPING=1 when it begins to stop.
func TestNotifiesSystemd(t *testing.T) {
	bin := util.RequireIntegration(t)
	path := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	b := util.NewBerthd(t, "")
	b.Start(t, bin)
	read := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		if err := sock.SetReadDeadline(time.Now().Add(wait.Bound)); err != nil {
			t.Fatal(err)
		}
		n, err := sock.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, b.Log())
		}
		return string(buf[:n])
	}
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	if got := read(); got != "STATUS=serving CRI on "+b.Socket {
		t.Fatalf("second notification %q, want the status naming the socket", got)
	}
	if code := b.Signal(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, b.Log())
	}
	if got := read(); got != "STOPPING=1" {
		t.Fatalf("notification at the stop %q, want STOPPING=1", got)
	}
}
