package util

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ocgroups "github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Berthd is a berthd process started by a test, with its own temp dirs.
type Berthd struct {
	Dir     string // temp dir holding everything below
	Root    string
	State   string
	Socket  string
	Config  string // path of the config file written for it
	LogPath string
	// NRISocket is its NRI host's socket (plugins connect there).
	NRISocket string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done is closed
}

// RequireIntegration skips the test unless it runs as root with BERTHD set to a
// berthd binary, and returns that binary's path.
func RequireIntegration(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BERTHD")
	if bin == "" {
		t.Skip("integration test: set BERTHD to a berthd binary (make test does)")
	}
	if os.Geteuid() != 0 {
		t.Skip("integration test: needs root")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// Test network: a bridge name and subnet of the tests' own.
const (
	TestBridge = "berthit0"
	TestSubnet = "10.201.0.0/24"
)

// NewBerthd prepares temp dirs and a config file for a berthd: the tests' own
// CNI settings (an empty conf dir of its own, so the default network on
// TestBridge/TestSubnet) and its own NRI socket (NRISocket, no pre-installed
// plugins) after configTOML (which must not hold a [cni] or [nri] table: use
// DropIn to change their keys). Start runs it. The test's cleanup removes
// the bridge and restores the host's ip_forward, which the bridge plugin
// turns on.
func NewBerthd(t *testing.T, configTOML string) *Berthd {
	t.Helper()
	// Short dir: socket paths are limited to 107 bytes.
	dir, err := os.MkdirTemp("", "berth-it-")
	if err == nil {
		// Searchable, as /run is: the root of a pod with its own user
		// namespace (an unprivileged host ID) walks the path to its rootfs.
		err = os.Chmod(dir, 0o711)
	}
	if err != nil {
		t.Fatal(err)
	}
	hadOwnCgroup := len(cgroupDirs(OwnCgroup)) > 0
	t.Cleanup(func() {
		// What a failed test left running goes first: the shims it started
		// and its pods' containers; then whatever it left mounted.
		killLeftovers(dir)
		for _, m := range MountsUnder(dir) {
			_ = unix.Unmount(m, unix.MNT_DETACH)
		}
		os.RemoveAll(dir)
		if !hadOwnCgroup {
			removeEmptyCgroup(OwnCgroup)
		}
	})
	b := &Berthd{
		Dir:     dir,
		Root:    filepath.Join(dir, "root"),
		State:   filepath.Join(dir, "state"),
		Socket:  filepath.Join(dir, "state", "berth.sock"),
		Config:  filepath.Join(dir, "berth.toml"),
		LogPath: filepath.Join(dir, "berthd.log"),
	}
	base := fmt.Sprintf("\n[cni]\nconf_dir = %q\nbin_dirs = [\"/opt/cni/bin\"]\ndefault_bridge = %q\ndefault_subnet = %q\n\n",
		filepath.Join(dir, "net.d"), TestBridge, TestSubnet)
	// Every test berthd is an NRI host on a socket of its own, never the
	// node's default one (containerd may serve it).
	b.NRISocket = filepath.Join(dir, "nri.sock")
	base += fmt.Sprintf("[nri]\nsocket_path = %q\nplugin_path = %q\nplugin_config_path = %q\n\n",
		b.NRISocket, filepath.Join(dir, "nri", "plugins"), filepath.Join(dir, "nri", "conf.d"))
	if err := os.WriteFile(b.Config, []byte(configTOML+"\n"+base), 0o644); err != nil {
		t.Fatal(err)
	}
	restoreForwarding(t)
	return b
}

// DropIn writes a berth.d drop-in beside the config.
func (b *Berthd) DropIn(t *testing.T, name, toml string) {
	t.Helper()
	dir := filepath.Join(b.Dir, "berth.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// restoreForwarding puts ip_forward back, deletes the test bridge and the
// portmap plugin's chains (when the test made them) when the test ends.
func restoreForwarding(t *testing.T) {
	before, err := os.ReadFile(ipForward)
	portmapBefore := natRules() != "" && strings.Contains(natRules(), "-N CNI-HOSTPORT-DNAT")
	t.Cleanup(func() {
		if err == nil {
			_ = os.WriteFile(ipForward, before, 0o644)
		}
		if _, statErr := os.Stat("/sys/class/net/" + TestBridge); statErr == nil {
			_ = exec.Command("ip", "link", "del", TestBridge).Run()
		}
		if !portmapBefore {
			removePortmapChains()
		}
		removeSubnetMasquerade()
	})
}

// removeSubnetMasquerade removes the masquerade rules the bridge plugin made
// for pods of TestSubnet that a failed test left attached: the POSTROUTING
// jump and its chain.
func removeSubnetMasquerade() {
	prefix := strings.TrimSuffix(TestSubnet, "0/24")
	for _, line := range strings.Split(natRules(), "\n") {
		f := ruleFields(line)
		if len(f) < 6 || f[0] != "-A" || f[1] != "POSTROUTING" || f[2] != "-s" || !strings.HasPrefix(f[3], prefix) ||
			!strings.HasPrefix(f[len(f)-1], "CNI-") {
			continue
		}
		chain := f[len(f)-1]
		_ = exec.Command("iptables", append([]string{"-w", "-t", "nat", "-D"}, f[1:]...)...).Run()
		if exec.Command("iptables", "-w", "-t", "nat", "-F", chain).Run() == nil {
			_ = exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
		}
	}
}

func natRules() string {
	out, _ := exec.Command("iptables", "-w", "-t", "nat", "-S").Output()
	return string(out)
}

// removePortmapChains removes the nat chains the portmap plugin creates on
// first use (and the jumps to them); see hack/lib.sh.
func removePortmapChains() {
	for _, line := range strings.Split(natRules(), "\n") {
		f := ruleFields(line)
		if len(f) > 2 && f[0] == "-A" && strings.HasPrefix(f[len(f)-1], "CNI-HOSTPORT-") &&
			(f[1] == "PREROUTING" || f[1] == "OUTPUT" || f[1] == "POSTROUTING") {
			_ = exec.Command("iptables", append([]string{"-w", "-t", "nat", "-D"}, f[1:]...)...).Run()
		}
	}
	for _, c := range []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-MASQ", "CNI-HOSTPORT-SETMARK"} {
		if exec.Command("iptables", "-w", "-t", "nat", "-F", c).Run() == nil {
			_ = exec.Command("iptables", "-w", "-t", "nat", "-X", c).Run()
		}
	}
}

// Args are the command-line arguments that point berthd at the test's dirs.
func (b *Berthd) Args(extra ...string) []string {
	return append([]string{"--config", b.Config, "--root", b.Root, "--state", b.State,
		"--listen", b.Socket, "--log-level", "debug"}, extra...)
}

// Start runs berthd in the background and waits until its socket answers. The
// process is stopped (SIGKILL) when the test ends, if still running.
func (b *Berthd) Start(t *testing.T, bin string, extra ...string) {
	t.Helper()
	logf, err := os.OpenFile(b.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command(bin, b.Args(extra...)...)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logf.Close()
	b.done = make(chan struct{})
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() { b.Kill(t) })
	// Runs before the kill (cleanups run last-in first-out): pods left by a
	// failed test are removed through berthd, which detaches their network.
	t.Cleanup(func() { b.removePods() })
	if err := b.waitReady(startTimeout()); err != nil {
		t.Fatalf("berthd did not come up: %v\n%s", err, b.Log())
	}
}

// CallTimeout is how long one CRI call of a test may take: 30 s, or
// $BERTH_TEST_CALL_TIMEOUT (a Go duration) where the machine is much slower
// (hack/test-vm.sh's emulated VM).
func CallTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BERTH_TEST_CALL_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}

// startTimeout is how long berthd may take to answer after it starts: 15 s,
// or one call's timeout where calls get more (a restart reattaches every
// shim, which the emulated VM can make slow).
func startTimeout() time.Duration {
	return max(15*time.Second, CallTimeout())
}

func (b *Berthd) waitReady(timeout time.Duration) error {
	conn := b.conn()
	defer conn.Close()
	client := runtime.NewRuntimeServiceClient(conn)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-b.done:
			return fmt.Errorf("berthd exited: %v", b.err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timed out waiting for the CRI socket")
}

// Log returns what berthd wrote so far.
func (b *Berthd) Log() string {
	data, _ := os.ReadFile(b.LogPath)
	return string(data)
}

// Pid is the berthd process id.
func (b *Berthd) Pid() int { return b.cmd.Process.Pid }

// Signal sends sig to berthd and waits up to timeout for it to exit; it returns
// the exit code (-1 when killed by a signal).
func (b *Berthd) Signal(t *testing.T, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal berthd: %v", err)
	}
	select {
	case <-b.done:
	case <-time.After(timeout):
		t.Fatalf("berthd did not exit within %v after %v\n%s", timeout, sig, b.Log())
	}
	return b.cmd.ProcessState.ExitCode()
}

// Kill stops berthd with SIGKILL if it still runs (a crash, as far as berthd knows).
func (b *Berthd) Kill(t *testing.T) {
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Kill()
	<-b.done
}

func (b *Berthd) conn() *grpc.ClientConn {
	conn, err := grpc.NewClient("unix://"+b.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err) // NewClient fails only on a malformed target
	}
	return conn
}

// Clients returns CRI runtime and image clients connected to berthd; the
// connection is closed when the test ends.
func (b *Berthd) Clients(t *testing.T) (runtime.RuntimeServiceClient, runtime.ImageServiceClient) {
	conn := b.conn()
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
}

// Run runs berthd in the foreground with the given arguments and returns its
// exit code and combined output (for tests of start-up failures).
func Run(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", bin, err)
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// MountsUnder lists the mount points under dir, deepest first.
func MountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

// removePods removes every pod berthd still has, if it runs.
func (b *Berthd) removePods() {
	select {
	case <-b.done:
		return
	default:
	}
	conn := b.conn()
	defer conn.Close()
	rc := runtime.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := rc.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range list.Items {
		_, _ = rc.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}

// ruleFields splits an iptables -S line into arguments, keeping "quoted
// comments" whole.
func ruleFields(line string) []string {
	var out []string
	var cur strings.Builder
	quoted, started, escaped := false, false, false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quoted:
			escaped = true
		case r == '"':
			quoted, started = !quoted, true
		case r == ' ' && !quoted:
			if started {
				out = append(out, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if started {
		out = append(out, cur.String())
	}
	return out
}

// OwnCgroup is the cgroup berthd makes for pods without a cgroup parent
// (/berth/<pod>).
const OwnCgroup = "/berth"

// removeEmptyCgroup removes the cgroup at path from every hierarchy where it
// has no children left (a cgroup with children is not removed).
func removeEmptyCgroup(path string) {
	for _, d := range cgroupDirs(path) {
		_ = os.Remove(d)
	}
}

// RemoveCgroups removes a test's cgroup parent (and its empty children) from
// every hierarchy.
func RemoveCgroups(parent string) {
	for _, d := range cgroupDirs(parent) {
		children, _ := filepath.Glob(d + "/*/")
		for _, c := range children {
			_ = os.Remove(c)
		}
		_ = os.Remove(d)
	}
}

// CopyRootfs copies a root filesystem (hack/test-images.sh stages busybox's)
// into a temp dir of the test's own, so containers cannot change the original.
func CopyRootfs(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v\n%s", err, out)
	}
	return dst
}

// ShimPids lists the berth-shim processes serving under dir.
func ShimPids(dir string) []int { return servingUnder(dir, "berth-shim") }

// RuntimeServerPids lists the runtime servers (berth-runtime serve) serving
// under dir.
func RuntimeServerPids(dir string) []int { return servingUnder(dir, "berth-runtime") }

// servingUnder lists the processes "binary serve ..." whose arguments name a
// path under dir.
func servingUnder(dir, binary string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) > 3 && filepath.Base(args[0]) == binary && args[1] == "serve" && strings.Contains(string(data), dir+"/") {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// PodCgroups lists the cgroup dirs of a pod that has no cgroup_parent
// (Berth's own /berth/<pod>), in every v1 hierarchy or in the v2 tree.
func PodCgroups(pod string) []string {
	return cgroupDirs(OwnCgroup + "/" + pod)
}

// cgroupDirs lists the dirs of a cgroup path in every v1 hierarchy or in the
// v2 tree.
func cgroupDirs(path string) []string {
	if Unified() {
		if _, err := os.Stat("/sys/fs/cgroup" + path); err == nil {
			return []string{"/sys/fs/cgroup" + path}
		}
		return nil
	}
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + path)
	return dirs
}

// Unified says whether the host's cgroups are v2 (one tree at /sys/fs/cgroup).
func Unified() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// CgroupFile reads a file of the cgroup at path (e.g. "/berth/<pod>/<ctr>"):
// v1file in the controller's hierarchy on a v1 host, v2file in the tree on a
// v2 host.
func CgroupFile(t testing.TB, controller, path, v1file, v2file string) string {
	t.Helper()
	file := "/sys/fs/cgroup/" + controller + path + "/" + v1file
	if Unified() {
		file = "/sys/fs/cgroup" + path + "/" + v2file
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// CPUWeight is the cgroup v2 cpu.weight of CPU shares, as the runtime
// converts them.
func CPUWeight(shares uint64) string {
	return strconv.FormatUint(ocgroups.ConvertCPUSharesToCgroupV2Value(shares), 10)
}

// killLeftovers kills the shims and runtime servers serving under dir and
// every process in the cgroups of the pods recorded under dir/root, then
// removes those cgroups.
func killLeftovers(dir string) {
	for _, pid := range append(ShimPids(dir), RuntimeServerPids(dir)...) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	records, _ := filepath.Glob(filepath.Join(dir, "root", "pods", "*.json"))
	for _, r := range records {
		for _, cg := range PodCgroups(strings.TrimSuffix(filepath.Base(r), ".json")) {
			killCgroup(cg)
		}
	}
}

func killCgroup(dir string) {
	for try := 0; try < 50; try++ {
		var pids []int
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				data, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(data)) {
					if pid, err := strconv.Atoi(f); err == nil {
						pids = append(pids, pid)
					}
				}
			}
			return nil
		})
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	children, _ := filepath.Glob(dir + "/*/")
	for _, c := range children {
		_ = os.Remove(c)
	}
	_ = os.Remove(dir)
}

// PauseChildren lists the pause processes a shim started.
func PauseChildren(shim int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", shim))
	for _, task := range tasks {
		data, _ := os.ReadFile(task)
		for _, f := range strings.Fields(string(data)) {
			cmd, _ := os.ReadFile("/proc/" + f + "/cmdline")
			if pid, err := strconv.Atoi(f); err == nil && strings.HasSuffix(string(cmd), "\x00pause\x00") {
				out = append(out, pid)
			}
		}
	}
	return out
}
