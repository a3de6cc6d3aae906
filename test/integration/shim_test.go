package integration

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/test/util"
)

// A container keeps running in its shim while the client (berthd) goes away
// and comes back. (berth-runtime is beside berth-shim, as make build puts it.)
func TestShimKeepsContainersAcrossClients(t *testing.T) {
	util.RequireIntegration(t)
	shimBin, rootfs := os.Getenv("BERTH_SHIM"), os.Getenv("BERTH_TEST_ROOTFS")
	if shimBin == "" || rootfs == "" {
		t.Skip("set BERTH_SHIM and BERTH_TEST_ROOTFS (make test does)")
	}
	rootfs = util.CopyRootfs(t, rootfs)
	dir, err := os.MkdirTemp("", "berth-shim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	socket := filepath.Join(dir, "shim.sock")
	bins := runner.Binaries{Shim: shimBin, Runtime: filepath.Join(filepath.Dir(shimBin), "berth-runtime")}
	pid, err := runner.StartShim(ctx, bins, socket, filepath.Join(dir, "state"), filepath.Join(dir, "shim.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	t.Cleanup(func() { util.RemoveCgroups("/berth-it-shim") })

	caps := []string{"CAP_KILL"}
	spec := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{Args: []string{"/bin/sh", "-c", "echo started; exec sleep 1000"}, Env: []string{"PATH=/bin"}, Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}},
		Root: &specs.Root{Path: rootfs, Readonly: true},
		// /dev must be a tmpfs: libcontainer sets up device nodes and
		// symlinks there, and the rootfs is shared by the tests.
		Mounts: []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "mode=755"}}},
		Linux: &specs.Linux{CgroupsPath: "/berth-it-shim/c1",
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}}},
	}
	c, err := runner.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "c1.log")
	if err := c.Create(ctx, "c1", spec, runner.IO{LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	c.Close() // berthd goes away

	c, err = runner.Dial(ctx, socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := c.Wait(ctx, "c1", 200*time.Millisecond); err != nil || r.Exited {
		t.Fatalf("container after reconnect: %+v, %v", r, err)
	}
	if err := c.Shutdown(ctx); err == nil {
		t.Fatal("the shim agreed to shut down with a container running")
	}
	if err := c.Signal(ctx, "c1", syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	r, err := c.Wait(ctx, "c1", 30*time.Second)
	if err != nil || !r.Exited || r.Exit.Code != 137 {
		t.Fatalf("exit = %+v, %v", r, err)
	}
	if log, _ := os.ReadFile(logPath); !strings.Contains(string(log), " stdout F started\n") {
		t.Fatalf("log = %q", log)
	}
	if err := c.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, "c1", 0); err == nil {
		t.Fatal("a deleted container is still known")
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the shim did not exit after Shutdown")
		}
	}
}
