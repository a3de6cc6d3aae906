package shim

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // the init re-exec needs it linked in
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/sandbox/runner/helper"
)

// The test binary is also the runtime: its helpers, and the containers'
// init, which libcontainer re-executes with "init" (berth-runtime does the
// same).
func init() {
	if len(os.Args) == 2 {
		switch os.Args[1] {
		case "init":
			libcontainer.Init()
		case runner.HelperCreate, runner.HelperExec, runner.HelperUpdate, runner.HelperSignal,
			runner.HelperDelete:
			os.Exit(helper.Main(os.Args[1]))
		}
	}
}

// TestMain makes the test process a child subreaper, as berth-shim is: it
// adopts the inits of the create helpers.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// testRuntime is the test binary, as the shim's runtime.
func testRuntime(t *testing.T) string {
	if rt := os.Getenv("BERTH_RUNTIME"); rt != "" {
		return rt
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return self
}

const cgroupParent = "/berth-test-shim"

func testRootfs(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	root := os.Getenv("BERTH_TEST_ROOTFS")
	if root == "" {
		root = "/var/cache/berth-dev/test-images/stage/busybox"
	}
	if _, err := os.Stat(filepath.Join(root, "bin/sh")); err != nil {
		t.Skipf("no busybox rootfs at %s (hack/test-images.sh stages it)", root)
	}
	t.Cleanup(removeTestCgroups)
	// A copy of the test's own: containers must not change the shared one.
	dst := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", root, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v\n%s", err, out)
	}
	return dst
}

func removeTestCgroups() {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroupParent)
	for _, d := range dirs {
		sub, _ := filepath.Glob(d + "/*/")
		for _, s := range sub {
			os.Remove(s)
		}
		os.Remove(d)
	}
}

func testSpec(rootfs, id string, args ...string) *specs.Spec {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_SETUID", "CAP_SETGID"}
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: args, Env: []string{"PATH=/bin:/usr/bin"}, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
		Root: &specs.Root{Path: rootfs, Readonly: true},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroupParent + "/" + id,
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.UTSNamespace}, {Type: specs.NetworkNamespace}},
			MaskedPaths: []string{"/proc/kcore"},
		},
	}
}

func TestContainerRunsAndLogs(t *testing.T) {
	rootfs := testRootfs(t)
	dir := t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), testRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "c1.log")
	spec := testSpec(rootfs, "c1", "/bin/sh", "-c", "echo hello; echo oops >&2; exit 3")
	if err := cs.Create("c1", spec, runner.IO{LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Create("c1", spec, runner.IO{LogPath: logPath}); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create = %v, want AlreadyExists", err)
	}
	if err := cs.Start("c1"); err != nil {
		t.Fatal(err)
	}
	exit, done, err := cs.Wait("c1", 30*time.Second)
	if err != nil || !done || exit.Code != 3 {
		t.Fatalf("exit = %+v, done %v, %v", exit, done, err)
	}
	log, _ := os.ReadFile(logPath)
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	var got []string
	for _, l := range lines {
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 {
			t.Fatalf("bad log line %q", l)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Fatalf("bad time in %q", l)
		}
		got = append(got, f[1]+" "+f[2]+" "+f[3])
	}
	if strings.Join(got, "|") != "stdout F hello|stderr F oops" && strings.Join(got, "|") != "stderr F oops|stdout F hello" {
		t.Fatalf("log records %q", got)
	}
	if err := cs.Delete("c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "c1")); !os.IsNotExist(err) {
		t.Fatalf("state left: %v", err)
	}
	if left, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroupParent + "/c1"); len(left) > 0 {
		t.Fatalf("cgroups left: %v", left)
	}
}

func TestContainerKilled(t *testing.T) {
	rootfs := testRootfs(t)
	dir := t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), testRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Create("c2", testSpec(rootfs, "c2", "/bin/sleep", "1000"), runner.IO{LogPath: filepath.Join(dir, "c2.log")}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Start("c2"); err != nil {
		t.Fatal(err)
	}
	if _, done, _ := cs.Wait("c2", 200*time.Millisecond); done {
		t.Fatal("sleep exited at once")
	}
	if err := cs.Signal("c2", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	exit, done, err := cs.Wait("c2", 30*time.Second)
	if err != nil || !done || exit.Code != 137 || exit.Signal != "killed" {
		t.Fatalf("exit = %+v, done %v, %v", exit, done, err)
	}
	if err := cs.Delete("c2"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Delete("c2"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

// What outlives a container's init is reaped by the shim (its subreaper),
// while the init's own exit status still reaches Wait.
func TestOrphansAreReaped(t *testing.T) {
	rootfs := testRootfs(t)
	dir := t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), testRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	runReaper(t, cs)
	// Without a PID namespace of its own, the background sleep is orphaned
	// to the subreaper when sh exits.
	spec := testSpec(rootfs, "c3", "/bin/sh", "-c", "sleep 0.2 & exit 5")
	spec.Linux.Namespaces = spec.Linux.Namespaces[1:]
	if err := cs.Create("c3", spec, runner.IO{LogPath: filepath.Join(dir, "c3.log")}); err != nil {
		t.Fatal(err)
	}
	if err := cs.Start("c3"); err != nil {
		t.Fatal(err)
	}
	exit, done, err := cs.Wait("c3", 30*time.Second)
	if err != nil || !done || exit.Code != 5 {
		t.Fatalf("init exit = %+v, %v, %v", exit, done, err)
	}
	awaitNoZombies(t)
	cs.Delete("c3")
}

// Start reads the init's exec FIFO: once, and not for an init that died
// before it (no hang); a created container can be deleted unstarted.
func TestStartThroughTheExecFifo(t *testing.T) {
	rootfs, dir, cs := newTestContainers(t)
	for _, id := range []string{"f1", "f2", "f3"} {
		if err := cs.Create(id, testSpec(rootfs, id, "/bin/sleep", "1000"), runner.IO{LogPath: filepath.Join(dir, id+".log")}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Delete(id) })
	}
	if err := cs.Start("f1"); err != nil {
		t.Fatal(err)
	}
	if err := cs.Start("f1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second start = %v, want FailedPrecondition", err)
	}
	if err := cs.Signal("f2", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cs.Start("f2"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("start of a killed init = %v, want FailedPrecondition", err)
	}
	if err := cs.Delete("f3"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "f3")); !os.IsNotExist(err) {
		t.Fatalf("state of the deleted container: %v", err)
	}
}

// A rollback's Delete can reach the shim before the Create it undoes (berthd
// gave up on the call while the request was on its way): that Create must not
// make a container nobody will delete.
func TestCreateAfterDeleteIsRefused(t *testing.T) {
	dir := t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), filepath.Join(dir, "no-runtime"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Delete("c1"); err != nil {
		t.Fatalf("delete of an unknown container = %v", err)
	}
	logPath := filepath.Join(dir, "c1.log")
	err = cs.Create("c1", testSpec(dir, "c1", "/bin/true"), runner.IO{LogPath: logPath})
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("create after delete = %v, want FailedPrecondition", err)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Fatalf("the refused create opened its log: %v", err)
	}
	if ids := cs.IDs(); len(ids) != 0 {
		t.Fatalf("containers %v after a refused create", ids)
	}
}
