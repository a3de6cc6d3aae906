package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

const busyboxImage = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// containerBerthd starts a berthd that pulls from the test registry, with
// busybox pulled.
func containerBerthd(t *testing.T) (*util.Berthd, string, runtime.RuntimeServiceClient) {
	t.Helper()
	bin := util.RequireIntegration(t)
	reg := testRegistry(t)
	b := util.NewBerthd(t, mirrorConfig(reg))
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}}); err != nil {
		t.Fatal(err)
	}
	return b, bin, rc
}

func runPod(t *testing.T, rc runtime.RuntimeServiceClient, cfg *runtime.PodSandboxConfig) string {
	t.Helper()
	resp, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return resp.PodSandboxId
}

// startContainer creates and starts a busybox container running args.
func startContainer(t *testing.T, rc runtime.RuntimeServiceClient, pod string, podCfg *runtime.PodSandboxConfig, name string,
	edit func(*runtime.ContainerConfig), args ...string) string {
	t.Helper()
	cfg := &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: busyboxImage},
		Command:  args,
		LogPath:  name + ".log",
		Labels:   map[string]string{"name": name},
	}
	if edit != nil {
		edit(cfg)
	}
	resp, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: resp.ContainerId}); err != nil {
		t.Fatal(err)
	}
	return resp.ContainerId
}

func containerStatus(t *testing.T, rc runtime.RuntimeServiceClient, id string) *runtime.ContainerStatus {
	t.Helper()
	st, err := rc.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	return st.Status
}

// waitExited waits until the container is reported EXITED, without any call
// that would make berthd look (the exit watcher must report it).
func waitExited(t *testing.T, rc runtime.RuntimeServiceClient, id string) *runtime.ContainerStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := containerStatus(t, rc, id)
		if st.State == runtime.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s still %v", id, st.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func execSync(t *testing.T, rc runtime.RuntimeServiceClient, id string, cmd ...string) *runtime.ExecSyncResponse {
	t.Helper()
	resp, err := rc.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: cmd, Timeout: 30})
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	return resp
}

// waitLog waits until the container's log holds a full record of text.
func waitLog(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), " F "+text+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q; it holds:\n%s", path, text, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertPodGone checks that nothing of the removed pods remains: no shim, no
// mount, no cgroup.
func assertPodGone(t *testing.T, b *util.Berthd, pods ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(util.ShimPids(b.Dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := util.ShimPids(b.Dir); len(pids) > 0 {
		t.Errorf("shims left: %v", pids)
	}
	if m := util.MountsUnder(b.Dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	for _, p := range pods {
		if cg := util.PodCgroups(p); len(cg) > 0 {
			t.Errorf("cgroups left: %v", cg)
		}
	}
}

func TestContainerLifecycle(t *testing.T) {
	b, _, rc := containerBerthd(t)
	logDir := t.TempDir()
	podCfg := podConfig("life")
	podCfg.LogDirectory = logDir
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "main", nil,
		"sh", "-c", "trap '' TERM; echo hello; echo oops >&2; head -c 20000 /dev/zero | tr '\\0' x; echo; "+
			"until [ -e /tmp/rotated ]; do sleep 0.05; done; echo rotated; exec sleep 1000")
	logPath := filepath.Join(logDir, "main.log")
	waitLog(t, logPath, "hello")
	waitLog(t, logPath, strings.Repeat("x", 20000-16384)) // the rest of a line over 16 KiB
	data, _ := os.ReadFile(logPath)
	if !strings.Contains(string(data), " stderr F oops\n") || !strings.Contains(string(data), " stdout P "+strings.Repeat("x", 16384)+"\n") {
		t.Fatalf("log lacks the stderr record or the split long line:\n%.300s", data)
	}
	st := containerStatus(t, rc, id)
	if st.State != runtime.ContainerState_CONTAINER_RUNNING || st.StartedAt == 0 || st.LogPath != logPath ||
		st.ImageRef == "" || st.ImageId == "" || st.Labels["name"] != "main" || st.StopSignal != runtime.Signal_SIGNAL_SIGTERM {
		t.Fatalf("status = %+v", st)
	}
	if u := st.GetUser().GetLinux(); u == nil || u.Uid != 0 || u.Gid != 0 || !slices.Contains(u.SupplementalGroups, 0) {
		t.Fatalf("status user = %v", st.GetUser())
	}
	list, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{
		PodSandboxId: pod, LabelSelector: map[string]string{"name": "main"},
		State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}}})
	if err != nil || len(list.Containers) != 1 || list.Containers[0].Id != id {
		t.Fatalf("ListContainers = %v, %v", list, err)
	}

	// ExecSync: output, stderr, exit code, the container's environment.
	r := execSync(t, rc, id, "sh", "-c", "echo out; echo err >&2; hostname; exit 3")
	if string(r.Stdout) != "out\ntest-hostname\n" || string(r.Stderr) != "err\n" || r.ExitCode != 3 {
		t.Fatalf("exec = %q %q %d", r.Stdout, r.Stderr, r.ExitCode)
	}
	// A timed-out exec fails with DeadlineExceeded and leaves no process.
	_, err = rc.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"sleep", "77"}, Timeout: 1})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("timed-out exec: %v", err)
	}
	if r := execSync(t, rc, id, "sh", "-c", "ps | grep 'sleep 77' | grep -v grep || true"); len(r.Stdout) != 0 {
		t.Fatalf("the timed-out process remains: %s", r.Stdout)
	}

	// Log rotation: after the kubelet renames the file, the shim reopens it.
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.ReopenContainerLog(ctxT(t), &runtime.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	execSync(t, rc, id, "touch", "/tmp/rotated")
	waitLog(t, logPath, "rotated")

	// Stop: the command ignores SIGTERM, so the grace period passes and
	// SIGKILL ends it.
	start := time.Now()
	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	st = containerStatus(t, rc, id)
	if st.State != runtime.ContainerState_CONTAINER_EXITED || st.ExitCode != 137 || st.FinishedAt == 0 || time.Since(start) < time.Second {
		t.Fatalf("after stop: %+v after %v", st, time.Since(start))
	}
	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := rc.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("exec in an exited container: %v", err)
	}
	if _, err := rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("status of a removed container: %v", err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

func TestContainerExitsAreReported(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("exits")
	podCfg.LogDirectory = t.TempDir()
	pod := runPod(t, rc, podCfg)
	done := startContainer(t, rc, pod, podCfg, "done", nil, "true")
	failed := startContainer(t, rc, pod, podCfg, "failed", nil, "sh", "-c", "exit 3")
	oom := startContainer(t, rc, pod, podCfg, "oom", func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}}
	}, "dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1")
	termed := startContainer(t, rc, pod, podCfg, "termed", func(c *runtime.ContainerConfig) {
		c.StopSignal = runtime.Signal_SIGNAL_SIGUSR1
	}, "sh", "-c", "trap 'exit 42' USR1; echo trapped; while true; do sleep 0.1; done")
	for id, want := range map[string]struct {
		code   int32
		reason string
	}{done: {0, "Completed"}, failed: {3, "Error"}, oom: {137, "OOMKilled"}} {
		st := waitExited(t, rc, id)
		if st.ExitCode != want.code || st.Reason != want.reason || st.FinishedAt < st.StartedAt {
			t.Errorf("%s: exit %d reason %q, want %d %q", st.Metadata.Name, st.ExitCode, st.Reason, want.code, want.reason)
		}
	}
	waitLog(t, filepath.Join(podCfg.LogDirectory, "termed.log"), "trapped") // USR1 before the trap would kill sh
	if st := containerStatus(t, rc, termed); st.StopSignal != runtime.Signal_SIGNAL_SIGUSR1 {
		t.Errorf("stop signal reported %v", st.StopSignal)
	}
	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: termed, Timeout: 30}); err != nil {
		t.Fatal(err)
	}
	if st := containerStatus(t, rc, termed); st.ExitCode != 42 {
		t.Errorf("the stop signal was not USR1: exit %d", st.ExitCode)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// ExecSync runs in berthd's runtime server: berthd's child, started by the
// first ExecSync, started again when it died, gone with berthd.
func TestRuntimeServer(t *testing.T) {
	b, _, rc := containerBerthd(t)
	cfg := podConfig("rtserver")
	pod := runPod(t, rc, cfg)
	ctr := startContainer(t, rc, pod, cfg, "sleeper", nil, "sleep", "100000")
	if pids := util.RuntimeServerPids(b.Dir); len(pids) != 0 {
		t.Fatalf("runtime servers before any exec: %v", pids)
	}
	if r := execSync(t, rc, ctr, "echo", "one"); string(r.Stdout) != "one\n" {
		t.Fatalf("exec: %q", r.Stdout)
	}
	first := util.RuntimeServerPids(b.Dir)
	if len(first) != 1 || parentOf(t, first[0]) != b.Pid() {
		t.Fatalf("runtime servers %v, want one child of berthd %d", first, b.Pid())
	}
	if err := syscall.Kill(first[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first[0], false) // berthd reaped it: all its threads are gone
	r, err := rc.ExecSync(ctxT(t), &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"echo", "two"}, Timeout: 30})
	if err != nil || string(r.Stdout) != "two\n" {
		serverLog, _ := os.ReadFile(filepath.Join(b.State, "shims", "runtime.log"))
		t.Fatalf("exec after the server died: %v, %v\nits log:\n%s\nberthd's:\n%s", r, err, serverLog, b.Log())
	}
	second := util.RuntimeServerPids(b.Dir)
	if len(second) != 1 || second[0] == first[0] {
		t.Fatalf("runtime servers %v after %v died", second, first)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	b.Kill(t)
	waitGone(t, second[0], true) // orphaned
}

// procStat is the fields of /proc/<pid>/stat after the command's name
// (state, ppid, ...).
func procStat(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:])), nil
}

// parentOf is pid's parent.
func parentOf(t *testing.T, pid int) int {
	t.Helper()
	f, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	return ppid
}

// waitGone waits until process pid is gone, or a zombie if zombieOK (a
// zombie's other threads may not have exited yet).
func waitGone(t *testing.T, pid int, zombieOK bool) {
	t.Helper()
	for deadline := time.Now().Add(util.CallTimeout()); ; time.Sleep(20 * time.Millisecond) {
		f, err := procStat(pid)
		if os.IsNotExist(err) || errors.Is(err, syscall.ESRCH) { // ESRCH: going as we read
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if zombieOK && f[0] == "Z" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs", pid)
		}
	}
}

// The restart test of the issue: containers keep running across a kill -9 of
// berthd; those that exit meanwhile report their exit codes; logs go on;
// ExecSync works.
func TestContainersSurviveBerthdKill(t *testing.T) {
	b, bin, rc := containerBerthd(t)
	flags := t.TempDir()
	type podInfo struct {
		id, running1, running2, quitter string
		logDir                          string
	}
	var pods []podInfo
	for i := range 10 {
		cfg := podConfig("survive" + string(rune('a'+i)))
		cfg.LogDirectory = t.TempDir()
		p := podInfo{id: runPod(t, rc, cfg), logDir: cfg.LogDirectory}
		ticker := []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"}
		p.running1 = startContainer(t, rc, p.id, cfg, "ticker", nil, ticker...)
		p.running2 = startContainer(t, rc, p.id, cfg, "sleeper", nil, "sleep", "100000")
		p.quitter = startContainer(t, rc, p.id, cfg, "quitter", func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{HostPath: flags, ContainerPath: "/flags", Readonly: true}}
		}, "sh", "-c", "until [ -e /flags/go ]; do sleep 0.05; done; exit 7")
		pods = append(pods, p)
	}
	b.Kill(t)
	if err := os.WriteFile(filepath.Join(flags, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the quitters exit while berthd is down
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	for _, p := range pods {
		for _, id := range []string{p.running1, p.running2} {
			if st := containerStatus(t, rc, id); st.State != runtime.ContainerState_CONTAINER_RUNNING {
				t.Fatalf("%s after the restart: %v (%s)", st.Metadata.Name, st.State, st.Message)
			}
		}
		if st := waitExited(t, rc, p.quitter); st.ExitCode != 7 || st.Reason != "Error" {
			t.Fatalf("quitter exited %d %q", st.ExitCode, st.Reason)
		}
		if r := execSync(t, rc, p.running2, "echo", "alive"); string(r.Stdout) != "alive\n" {
			t.Fatalf("exec after the restart: %q", r.Stdout)
		}
	}
	// Logs go on: ticks written after the restart appear.
	logPath := filepath.Join(pods[0].logDir, "ticker.log")
	data, _ := os.ReadFile(logPath)
	waitLog(t, logPath, fmt.Sprintf("tick %d", strings.Count(string(data), "tick")+3))
	var ids []string
	for _, p := range pods {
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.id}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, p.id)
	}
	assertPodGone(t, b, ids...)
}

// A shim killed from outside: its containers are reported exited (killed),
// their processes are gone, and the pod is removed without leftovers.
func TestKilledShimIsSettled(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("shimkill")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "sleeper", nil, "sleep", "100000")
	shims := util.ShimPids(b.Dir)
	if len(shims) != 1 {
		t.Fatalf("shims: %v", shims)
	}
	pauses := util.PauseChildren(shims[0])
	if len(pauses) != 1 {
		t.Fatalf("the pod's pause: %v", pauses)
	}
	if err := syscall.Kill(shims[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	st := waitExited(t, rc, id)
	if st.ExitCode != 137 || !strings.Contains(st.Message, "shim") {
		t.Fatalf("status after the shim died: %+v", st)
	}
	for _, cg := range util.PodCgroups(pod) {
		if procs, _ := os.ReadFile(filepath.Join(cg, id, "cgroup.procs")); len(procs) > 0 {
			t.Fatalf("container processes left in %s: %s", cg, procs)
		}
	}
	// The pause goes with its shim.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pauses[0], 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("pause %d outlived its shim", pauses[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// The pause, PID 1 of a pod's shared PID namespace, holds nothing a
// container could use: no capability, no new privileges, not dumpable (a
// default container cannot open /proc/1/root), confined to an empty dir
// (even a container allowed to trace it sees nothing of the host there).
func TestPauseIsConfined(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("pause")
	pod := runPod(t, rc, podCfg)
	plain := startContainer(t, rc, pod, podCfg, "plain", nil, "sleep", "100000")
	tracer := startContainer(t, rc, pod, podCfg, "tracer", func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			Capabilities: &runtime.Capability{AddCapabilities: []string{"SYS_PTRACE"}}}}
	}, "sleep", "100000")
	if r := execSync(t, rc, plain, "ls", "/proc/1/root/"); r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "denied") {
		t.Errorf("a container lists the pause's root: %q %q", r.Stdout, r.Stderr)
	}
	// Seen empty; or not at all where an AppArmor profile keeps the
	// container from tracing unconfined processes.
	r := execSync(t, rc, tracer, "ls", "-a", "/proc/1/root/")
	if seen := strings.Join(strings.Fields(string(r.Stdout)), " "); seen != ". .." && (seen != "" || !strings.Contains(string(r.Stderr), "denied")) {
		t.Errorf("a tracing container sees in the pause's root: %q %q", r.Stdout, r.Stderr)
	}
	pauses := util.PauseChildren(util.ShimPids(b.Dir)[0])
	if len(pauses) != 1 {
		t.Fatalf("pauses: %v", pauses)
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pauses[0]))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"} {
		if !strings.Contains(string(st), want) {
			t.Errorf("pause status lacks %q:\n%s", want, st)
		}
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// Capabilities and privileged, checked from inside the containers.
func TestCapabilitiesAndPrivileged(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("caps")
	pod := runPod(t, rc, podCfg)
	withSC := func(sc *runtime.LinuxContainerSecurityContext) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) { c.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc} }
	}
	plain := startContainer(t, rc, pod, podCfg, "plain", nil, "sleep", "100000")
	netAdmin := startContainer(t, rc, pod, podCfg, "netadmin", withSC(&runtime.LinuxContainerSecurityContext{
		Capabilities: &runtime.Capability{AddCapabilities: []string{"NET_ADMIN"}}}), "sleep", "100000")
	none := startContainer(t, rc, pod, podCfg, "none", withSC(&runtime.LinuxContainerSecurityContext{
		Capabilities: &runtime.Capability{DropCapabilities: []string{"ALL"}}}), "sleep", "100000")
	// Its own pod: sysfs is one superblock per network namespace, read-only
	// for all once a container of the pod mounted it read-only.
	privCfg := podConfig("capspriv")
	privPod := runPod(t, rc, privCfg)
	priv := startContainer(t, rc, privPod, privCfg, "priv", withSC(&runtime.LinuxContainerSecurityContext{Privileged: true}),
		"sleep", "100000")
	if r := execSync(t, rc, plain, "brctl", "addbr", "br-plain"); r.ExitCode == 0 {
		t.Error("a default container could add a bridge")
	}
	if r := execSync(t, rc, netAdmin, "brctl", "addbr", "br-cap"); r.ExitCode != 0 {
		t.Errorf("NET_ADMIN could not add a bridge: %s", r.Stderr)
	}
	if r := execSync(t, rc, none, "grep", "CapEff", "/proc/self/status"); !strings.Contains(string(r.Stdout), "0000000000000000") {
		t.Errorf("drop ALL left %s", r.Stdout)
	}
	if r := execSync(t, rc, priv, "brctl", "addbr", "br-priv"); r.ExitCode != 0 {
		t.Errorf("privileged could not add a bridge: %s", r.Stderr)
	}
	if r := execSync(t, rc, priv, "sh", "-c", "grep ' /sys ' /proc/mounts; ls /dev"); !strings.Contains(string(r.Stdout), "sysfs rw") ||
		!strings.Contains(string(r.Stdout), "kmsg") {
		t.Errorf("privileged: /sys or host devices missing:\n%s", r.Stdout)
	}
	if r := execSync(t, rc, plain, "sh", "-c", "grep ' /sys ' /proc/mounts; ls /dev"); !strings.Contains(string(r.Stdout), "sysfs ro") ||
		strings.Contains(string(r.Stdout), "kmsg") {
		t.Errorf("default container: writable /sys or host devices:\n%s", r.Stdout)
	}
	for _, p := range []string{pod, privPod} {
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p}); err != nil {
			t.Fatal(err)
		}
	}
	assertPodGone(t, b, pod, privPod)
}

// Mount propagation: a host mount made after start reaches rslave and rshared
// mounts, not private ones; a mount made in the container reaches the host
// only through rshared.
func TestMountPropagation(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("propagation")
	pod := runPod(t, rc, podCfg)
	src := filepath.Join(t.TempDir(), "shared")
	if err := os.MkdirAll(filepath.Join(src, "from-host"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(src, src, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(src, unix.MNT_DETACH) })
	if err := unix.Mount("", src, "", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		t.Fatal(err)
	}
	ids := map[runtime.MountPropagation]string{}
	for prop, name := range map[runtime.MountPropagation]string{runtime.MountPropagation_PROPAGATION_PRIVATE: "private",
		runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER: "slave", runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL: "shared"} {
		ids[prop] = startContainer(t, rc, pod, podCfg, name, func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{HostPath: src, ContainerPath: "/mnt/vol", Propagation: prop}}
			c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}}
		}, "sleep", "100000")
	}
	hostMount := filepath.Join(src, "from-host")
	if err := unix.Mount("tmpfs", hostMount, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(hostMount, unix.MNT_DETACH) })
	for prop, id := range ids {
		r := execSync(t, rc, id, "grep", "-c", " /mnt/vol/from-host ", "/proc/self/mountinfo")
		seen := strings.TrimSpace(string(r.Stdout)) != "0"
		if seen != (prop != runtime.MountPropagation_PROPAGATION_PRIVATE) {
			t.Errorf("%v: host mount seen in the container: %v", prop, seen)
		}
	}
	r := execSync(t, rc, ids[runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL], "sh", "-c",
		"mkdir -p /mnt/vol/from-ctr && mount -t tmpfs tmpfs /mnt/vol/from-ctr")
	if r.ExitCode != 0 {
		t.Fatalf("mount in the container: %s", r.Stderr)
	}
	ctrMount := filepath.Join(src, "from-ctr")
	t.Cleanup(func() { _ = unix.Unmount(ctrMount, unix.MNT_DETACH) })
	if m := util.MountsUnder(src); !slices.Contains(m, ctrMount) {
		t.Fatalf("the container's mount did not reach the host: %v", m)
	}
	_ = unix.Unmount(ctrMount, unix.MNT_DETACH)
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// A tty container logs its terminal's output as stdout; a stdin container
// keeps reading the stdin the shim holds open.
func TestTerminalAndStdin(t *testing.T) {
	b, _, rc := containerBerthd(t)
	logDir := t.TempDir()
	podCfg := podConfig("tty")
	podCfg.LogDirectory = logDir
	pod := runPod(t, rc, podCfg)
	tty := startContainer(t, rc, pod, podCfg, "tty", func(c *runtime.ContainerConfig) { c.Tty = true },
		"sh", "-c", "tty; test -t 0 && echo stdin-is-a-tty; exec sleep 100000")
	stdin := startContainer(t, rc, pod, podCfg, "stdin", func(c *runtime.ContainerConfig) { c.Stdin = true }, "cat")
	noStdin := startContainer(t, rc, pod, podCfg, "nostdin", nil, "cat")
	waitLog(t, filepath.Join(logDir, "tty.log"), "/dev/pts/0")
	waitLog(t, filepath.Join(logDir, "tty.log"), "stdin-is-a-tty")
	if data, _ := os.ReadFile(filepath.Join(logDir, "tty.log")); strings.Contains(string(data), "\r") || strings.Contains(string(data), " stderr ") {
		t.Errorf("tty log holds carriage returns or stderr records:\n%q", data)
	}
	if st := waitExited(t, rc, noStdin); st.ExitCode != 0 {
		t.Errorf("cat without stdin: %+v", st)
	}
	if st := containerStatus(t, rc, stdin); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("cat with stdin is %v: its stdin was not held open", st.State)
	}
	if st := containerStatus(t, rc, tty); st.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Errorf("tty container is %v", st.State)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// UpdateContainerResources changes the cgroup of a running container and
// its status; a setting the kernel refuses changes nothing.
func TestUpdateContainerResources(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("update")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "main", func(c *runtime.ContainerConfig) {
		// Hugepage limits as the kubelet sends them for every container:
		// hosts without a hugetlb controller (this one) must still run it.
		c.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{
			CpuShares: 512, MemoryLimitInBytes: 128 << 20, HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB"}}}}
	}, "sleep", "100000")
	cg := "/berth/" + pod + "/" + id
	memory := func() string { return util.CgroupFile(t, "memory", cg, "memory.limit_in_bytes", "memory.max") }
	if v := memory(); v != fmt.Sprint(128<<20) {
		t.Fatalf("memory limit at start = %s", v)
	}
	update := &runtime.LinuxContainerResources{CpuShares: 256, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20}
	if _, err := rc.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: update}); err != nil {
		t.Fatal(err)
	}
	wantShares, wantQuota := "256", "50000"
	if util.Unified() {
		wantShares, wantQuota = util.CPUWeight(256), "50000 100000"
	}
	if m, s, q := memory(), util.CgroupFile(t, "cpu", cg, "cpu.shares", "cpu.weight"), util.CgroupFile(t, "cpu", cg, "cpu.cfs_quota_us", "cpu.max"); m != fmt.Sprint(64<<20) ||
		s != wantShares || q != wantQuota {
		t.Fatalf("after update: memory %s, shares %s, quota %s", m, s, q)
	}
	if r := containerStatus(t, rc, id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 64<<20 || r.GetCpuQuota() != 50000 || r.GetCpuShares() != 256 {
		t.Fatalf("status resources = %v", r)
	}
	// The kernel refuses a CFS quota under 1 ms: the update fails and the
	// memory limit, written before the quota, is set back.
	bad := &runtime.LinuxContainerResources{CpuShares: 256, MemoryLimitInBytes: 32 << 20, CpuQuota: 500, CpuPeriod: 100000}
	if _, err := rc.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: bad}); err == nil {
		t.Fatal("an update with a 0.5 ms quota worked")
	}
	if m := memory(); m != fmt.Sprint(64<<20) {
		t.Errorf("memory limit after a failed update = %s", m)
	}
	if r := containerStatus(t, rc, id).GetResources().GetLinux(); r.GetMemoryLimitInBytes() != 64<<20 {
		t.Errorf("status after a failed update = %v", r)
	}
	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	_, err := rc.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: update})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("update of an exited container: %v", err)
	}
	_, err = rc.UpdateContainerResources(ctxT(t), &runtime.UpdateContainerResourcesRequest{ContainerId: "nonesuch", Linux: update})
	if status.Code(err) != codes.NotFound {
		t.Errorf("update of a missing container: %v", err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// pullTestImage pulls repo (e.g. "berth-test/deep:1") from the test registry
// and returns its reference.
func pullTestImage(t *testing.T, b *util.Berthd, repo string) string {
	t.Helper()
	_, ic := b.Clients(t)
	ref := testRegistry(t) + "/" + repo
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	return ref
}

// runTestImage pulls repo from the test registry and runs it ("sleep") in a
// pod of its own named name; it returns the pod and the container.
func runTestImage(t *testing.T, b *util.Berthd, rc runtime.RuntimeServiceClient, repo, name string) (pod, id string) {
	t.Helper()
	img := pullTestImage(t, b, repo)
	podCfg := podConfig(name)
	pod = runPod(t, rc, podCfg)
	id = startContainer(t, rc, pod, podCfg, name, func(c *runtime.ContainerConfig) { c.Image.Image = img }, "sleep", "100000")
	return pod, id
}

// An image of 100 layers, whose layer paths overflow one page of overlay
// mount options, runs.
func TestDeepImageRuns(t *testing.T) {
	b, _, rc := containerBerthd(t)
	pod, id := runTestImage(t, b, rc, "berth-test/deep:1", "deep")
	if r := execSync(t, rc, id, "sh", "-c", "ls /deep | wc -l"); strings.TrimSpace(string(r.Stdout)) != "99" {
		t.Fatalf("/deep holds %q entries, want 99 (one per layer)", r.Stdout)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// An image VOLUME is an empty dir of the container's own, mounted where the
// image says, which the container may write (it is removed with the
// container).
func TestImageVolume(t *testing.T) {
	b, _, rc := containerBerthd(t)
	pod, id := runTestImage(t, b, rc, "berth-test/volume:1", "image-volume")
	r := execSync(t, rc, id, "sh", "-c", "ls -A /data; echo hi > /data/f && cat /data/f; stat -c %u:%g /data; grep -c ' /data ' /proc/self/mountinfo")
	if got := strings.Fields(string(r.Stdout)); strings.Join(got, " ") != "hi 0:0 1" {
		t.Errorf("image volume: %q %q, want an empty, writable mount of root's", r.Stdout, r.Stderr)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// berthd killed while CreateContainer calls are in flight: after the restart
// every container is whole — a record, its rootfs mounted, its snapshot and
// its init in the shim, and for those that asked for one an image mount with
// its snapshot — or entirely gone.
func TestKillDuringCreateContainer(t *testing.T) {
	b, bin, rc := containerBerthd(t)
	podCfg := podConfig("crashcreate")
	pod := runPod(t, rc, podCfg)
	startContainer(t, rc, pod, podCfg, "first", nil, "sleep", "100000") // the shim is up
	var calls sync.WaitGroup
	for i := range 12 {
		calls.Add(1)
		go func() {
			defer calls.Done()
			cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: fmt.Sprint("c", i)},
				Image: &runtime.ImageSpec{Image: busyboxImage}, Command: []string{"sleep", "100000"}}
			if i%2 == 0 {
				cfg.Metadata.Name += "-imagemount"
				cfg.Mounts = []*runtime.Mount{{ContainerPath: "/bb", Readonly: true, Image: &runtime.ImageSpec{Image: busyboxImage}}}
			}
			_, _ = rc.CreateContainer(context.Background(), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
		}()
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		list, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
		if err == nil && len(list.Containers) > 1 {
			break
		}
	}
	b.Kill(t)
	calls.Wait()
	// A session's FIFOs, as a killed berthd leaves them: the next one removes them.
	stale := filepath.Join(b.State, "io", "stale")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("session FIFOs of the killed berthd remain: %v", err)
	}
	list, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var records, withImageMount []string
	for _, c := range list.Containers {
		records = append(records, c.Id)
		if strings.HasSuffix(c.Metadata.Name, "-imagemount") {
			withImageMount = append(withImageMount, c.Id)
		}
	}
	slices.Sort(records)
	slices.Sort(withImageMount)
	shim, err := runner.Dial(ctxT(t), filepath.Join(b.State, "shims", pod, "shim.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer shim.Close()
	inShim, err := shim.List(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(inShim)
	var mounted, imageMounted, snapshots, imageSnapshots []string
	for _, m := range util.MountsUnder(filepath.Join(b.State, "containers")) {
		if id, _, isImage := strings.Cut(strings.TrimPrefix(m, filepath.Join(b.State, "containers")+"/"), "/image-mounts/"); isImage {
			imageMounted = append(imageMounted, id)
		} else {
			mounted = append(mounted, filepath.Base(filepath.Dir(m)))
		}
	}
	for _, name := range dirNames(t, filepath.Join(b.Root, "images", "snapshots")) {
		if id, isImage := strings.CutSuffix(name, ".image0"); isImage {
			imageSnapshots = append(imageSnapshots, id)
		} else {
			snapshots = append(snapshots, name)
		}
	}
	slices.Sort(mounted)
	slices.Sort(imageMounted)
	for what, ids := range map[string][]string{"in the shim": inShim, "mounted": mounted,
		"with a snapshot": snapshots, "with a dir": dirNames(t, filepath.Join(b.State, "containers"))} {
		if !slices.Equal(ids, records) {
			t.Errorf("containers %s: %v; recorded: %v", what, ids, records)
		}
	}
	for what, ids := range map[string][]string{"with an image mount": imageMounted, "with an image mount's snapshot": imageSnapshots} {
		if !slices.Equal(ids, withImageMount) {
			t.Errorf("containers %s: %v; recorded with one: %v", what, ids, withImageMount)
		}
	}
	t.Logf("%d of 13 containers were whole when berthd was killed", len(records))
	for _, id := range records {
		if st := containerStatus(t, rc, id); st.State == runtime.ContainerState_CONTAINER_CREATED {
			if _, err := rc.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
				t.Errorf("start %s after the restart: %v", id, err)
			}
		}
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
	if left := dirNames(t, filepath.Join(b.Root, "images", "snapshots")); len(left) > 0 {
		t.Errorf("snapshots left: %v", left)
	}
}

// cgroupValue is a number in a file of the cgroup cg: the file's one value,
// or the value of key in a keyed file (v1file on v1, v2file on v2).
func cgroupValue(t *testing.T, cg, controller, v1file, v2file, key string) uint64 {
	t.Helper()
	for _, line := range strings.Split(util.CgroupFile(t, controller, cg, v1file, v2file), "\n") {
		if f := strings.Fields(line); key == "" && len(f) == 1 || len(f) == 2 && f[0] == key {
			v, _ := strconv.ParseUint(f[len(f)-1], 10, 64)
			return v
		}
	}
	t.Fatalf("%s has no %q", v1file, key)
	return 0
}

// cpuUsage is the CPU time the cgroup cg used, in nanoseconds.
func cpuUsage(t *testing.T, cg string) uint64 {
	t.Helper()
	if util.Unified() {
		return cgroupValue(t, cg, "", "", "cpu.stat", "usage_usec") * 1000
	}
	return cgroupValue(t, cg, "cpuacct", "cpuacct.usage", "", "")
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// A pod's sysctls hold in its namespaces and not on the host; one that
// would reach the host is refused, leaving nothing.
func TestPodSysctls(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("sysctls")
	podCfg.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{
		"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "net.ipv4.ip_unprivileged_port_start": "99"}}
	host := func(path string) string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	hostBefore := host("/proc/sys/fs/mqueue/msg_max") + host("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	r := execSync(t, rc, id, "cat", "/proc/sys/kernel/shm_rmid_forced", "/proc/sys/fs/mqueue/msg_max", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if string(r.Stdout) != "1\n100\n99\n" {
		t.Errorf("sysctls in the container: %q", r.Stdout)
	}
	if after := host("/proc/sys/fs/mqueue/msg_max") + host("/proc/sys/net/ipv4/ip_unprivileged_port_start"); after != hostBefore {
		t.Errorf("the host's sysctls changed: %s, were %s", after, hostBefore)
	}
	hostNet := podConfig("sysctlshost")
	hostNet.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
		SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}}
	if _, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: hostNet}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a net sysctl in a hostNetwork pod: %v, want InvalidArgument", err)
	}
	bad := podConfig("sysctlsbad")
	bad.Linux = &runtime.LinuxPodSandboxConfig{Sysctls: map[string]string{"kernel.core_pattern": "|/tmp/x"}}
	if _, err := rc.RunPodSandbox(ctxT(t), &runtime.RunPodSandboxRequest{Config: bad}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a host-wide sysctl: %v, want InvalidArgument", err)
	}
	if list, _ := rc.ListPodSandbox(ctxT(t), &runtime.ListPodSandboxRequest{}); len(list.GetItems()) != 1 {
		t.Errorf("pods after the refused ones: %d, want 1", len(list.GetItems()))
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// Stats of a container that burns a CPU and holds 20 MB (of /dev/shm),
// checked against its cgroup's files; pod stats with its network and
// processes; the filters.
func TestStats(t *testing.T) {
	b, _, rc := containerBerthd(t)
	logDir := t.TempDir()
	podCfg := podConfig("stats")
	podCfg.LogDirectory = logDir
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "burner", nil, "sh", "-c",
		"head -c 5000000 /dev/urandom > /data; (while :; do :; done) & head -c 20000000 /dev/zero > /dev/shm/fill; echo ready; sleep 100000")
	idle := startContainer(t, rc, pod, podCfg, "idle", func(c *runtime.ContainerConfig) { c.Labels["role"] = "idle" }, "sleep", "100000")
	waitLog(t, filepath.Join(logDir, "burner.log"), "ready")
	execSync(t, rc, idle, "ping", "-c", "1", "-W", "1", "10.201.0.1") // some traffic on eth0
	cg := "/berth/" + pod + "/" + id
	before := cpuUsage(t, cg)
	stats := func() *runtime.ContainerStats {
		t.Helper()
		resp, err := rc.ContainerStats(ctxT(t), &runtime.ContainerStatsRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Stats
	}
	first := stats()
	after := cpuUsage(t, cg)
	if cpu := first.GetCpu().GetUsageCoreNanoSeconds().GetValue(); cpu < before || cpu > after {
		t.Errorf("CPU %d, the cgroup said %d then %d", cpu, before, after)
	}
	inactiveKey := "total_inactive_file"
	if util.Unified() {
		inactiveKey = "inactive_file"
	}
	usage, inactive := cgroupValue(t, cg, "memory", "memory.usage_in_bytes", "memory.current", ""), cgroupValue(t, cg, "memory", "memory.stat", "memory.stat", inactiveKey)
	if ws := first.GetMemory().GetWorkingSetBytes().GetValue(); ws < 20_000_000 || absDiff(ws, usage-inactive) > 2<<20 {
		t.Errorf("working set %d, the cgroup says %d - %d", ws, usage, inactive)
	}
	if wl := first.GetWritableLayer(); wl.GetUsedBytes().GetValue() < 5_000_000 || wl.GetInodesUsed().GetValue() == 0 {
		t.Errorf("writable layer: %v", wl)
	}
	// Nano-cores are the CPU used between two samples over the time between
	// them (whatever share of a CPU the busy loop gets on a loaded host).
	time.Sleep(time.Second)
	second := stats().GetCpu()
	used, took := second.GetUsageCoreNanoSeconds().GetValue()-first.GetCpu().GetUsageCoreNanoSeconds().GetValue(),
		second.GetTimestamp()-first.GetCpu().GetTimestamp()
	if cores, want := second.GetUsageNanoCores().GetValue(), used*1e9/uint64(took); cores == 0 || absDiff(cores, want) > want/1000+1 {
		t.Errorf("a busy loop uses %d nanocores, its samples say %d ns of CPU in %d ns", cores, used, took)
	}
	list := func(f *runtime.ContainerStatsFilter) int {
		resp, err := rc.ListContainerStats(ctxT(t), &runtime.ListContainerStatsRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Stats)
	}
	if all, byPod, byLabel, byID, none := list(nil), list(&runtime.ContainerStatsFilter{PodSandboxId: pod}),
		list(&runtime.ContainerStatsFilter{LabelSelector: map[string]string{"role": "idle"}}), list(&runtime.ContainerStatsFilter{Id: id}),
		list(&runtime.ContainerStatsFilter{LabelSelector: map[string]string{"role": "none"}}); all != 2 || byPod != 2 || byLabel != 1 || byID != 1 || none != 0 {
		t.Errorf("listed %d, by pod %d, by label %d, by id %d, by a label no one has %d", all, byPod, byLabel, byID, none)
	}
	ps, err := rc.PodSandboxStats(ctxT(t), &runtime.PodSandboxStatsRequest{PodSandboxId: pod})
	if err != nil {
		t.Fatal(err)
	}
	l := ps.GetStats().GetLinux()
	if l.GetProcess().GetProcessCount().GetValue() < 3 || l.GetMemory().GetWorkingSetBytes().GetValue() < 20_000_000 || len(l.GetContainers()) != 2 ||
		l.GetNetwork().GetDefaultInterface().GetName() != "eth0" || l.GetNetwork().GetDefaultInterface().GetTxBytes().GetValue() == 0 {
		t.Errorf("pod stats: %v", l)
	}
	if resp, err := rc.ListPodSandboxStats(ctxT(t), &runtime.ListPodSandboxStatsRequest{}); err != nil || len(resp.Stats) != 1 {
		t.Errorf("ListPodSandboxStats = %v, %v", resp, err)
	}
	// Metrics, as the kubelet's /metrics/cadvisor takes them from the runtime.
	descs, err := rc.ListMetricDescriptors(ctxT(t), &runtime.ListMetricDescriptorsRequest{})
	if err != nil || len(descs.Descriptors) == 0 {
		t.Fatalf("ListMetricDescriptors = %v, %v", descs, err)
	}
	pm, err := rc.ListPodSandboxMetrics(ctxT(t), &runtime.ListPodSandboxMetricsRequest{})
	if err != nil || len(pm.PodMetrics) != 1 || len(pm.PodMetrics[0].ContainerMetrics) != 2 {
		t.Fatalf("ListPodSandboxMetrics = %v, %v", pm, err)
	}
	metric := func(ms []*runtime.Metric, name string, labels ...string) uint64 {
		for _, m := range ms {
			if m.Name == name && slices.Equal(m.LabelValues[len(m.LabelValues)-len(labels):], labels) {
				return m.Value.GetValue()
			}
		}
		t.Fatalf("no metric %s %v in %v", name, labels, ms)
		return 0
	}
	for _, cm := range pm.PodMetrics[0].ContainerMetrics {
		if cm.ContainerId == id {
			if ws := metric(cm.Metrics, "container_memory_working_set_bytes"); ws < 20_000_000 {
				t.Errorf("burner's working set metric: %d", ws)
			}
		}
	}
	if tx := metric(pm.PodMetrics[0].Metrics, "container_network_transmit_bytes_total", "eth0"); tx == 0 {
		t.Error("no bytes sent on eth0 in the pod's metrics")
	}
	// The list streams (kubelet 1.36's CRIListStreaming) give the same items.
	statStream, err := rc.StreamContainerStats(ctxT(t), &runtime.StreamContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := countStream(t, statStream.Recv, func(m *runtime.StreamContainerStatsResponse) int { return len(m.ContainerStats) }); n != 2 {
		t.Errorf("StreamContainerStats sent %d, want 2", n)
	}
	podStream, err := rc.StreamPodSandboxes(ctxT(t), &runtime.StreamPodSandboxesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := countStream(t, podStream.Recv, func(m *runtime.StreamPodSandboxesResponse) int { return len(m.PodSandboxes) }); n != 1 {
		t.Errorf("StreamPodSandboxes sent %d, want 1", n)
	}
	if _, err := rc.ContainerStats(ctxT(t), &runtime.ContainerStatsRequest{ContainerId: "nonesuch"}); status.Code(err) != codes.NotFound {
		t.Errorf("stats of a missing container: %v", err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

func absDiff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// Seccomp: the default profile filters (a new user namespace is refused),
// unconfined does not, a Localhost profile applies, privileged ignores it.
func TestSeccomp(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("seccomp")
	pod := runPod(t, rc, podCfg)
	profile := filepath.Join(t.TempDir(), "block-chmod.json")
	if err := os.WriteFile(profile, []byte(`{"defaultAction": "SCMP_ACT_ALLOW",
		"syscalls": [{"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	withProfile := func(p *runtime.SecurityProfile, privileged bool) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) {
			c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Seccomp: p, Privileged: privileged}}
		}
	}
	def := startContainer(t, rc, pod, podCfg, "default", withProfile(&runtime.SecurityProfile{}, false), "sleep", "100000")
	unconfined := startContainer(t, rc, pod, podCfg, "unconfined", withProfile(nil, false), "sleep", "100000")
	local := startContainer(t, rc, pod, podCfg, "local", withProfile(&runtime.SecurityProfile{
		ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: profile}, false), "sleep", "100000")
	privCfg := podConfig("seccomppriv") // privileged in a pod of its own (see TestCapabilitiesAndPrivileged)
	privPod := runPod(t, rc, privCfg)
	priv := startContainer(t, rc, privPod, privCfg, "priv", withProfile(&runtime.SecurityProfile{
		ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: profile}, true), "sleep", "100000")
	mode := func(id string) string {
		r := execSync(t, rc, id, "grep", "^Seccomp:", "/proc/self/status")
		return strings.TrimSpace(strings.TrimPrefix(string(r.Stdout), "Seccomp:"))
	}
	if m, u := mode(def), mode(unconfined); m != "2" || u != "0" {
		t.Errorf("seccomp mode: default %q, unconfined %q", m, u)
	}
	if r := execSync(t, rc, def, "busybox", "unshare", "-U", "true"); r.ExitCode == 0 {
		t.Error("the default profile let a container make a user namespace")
	}
	if r := execSync(t, rc, unconfined, "busybox", "unshare", "-U", "true"); r.ExitCode != 0 {
		t.Errorf("an unconfined container could not make a user namespace: %s", r.Stderr)
	}
	if r := execSync(t, rc, local, "chmod", "600", "/etc/hostname"); r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "not permitted") {
		t.Errorf("the localhost profile let chmod through: %d %s", r.ExitCode, r.Stderr)
	}
	if r := execSync(t, rc, priv, "touch", "/tmp/f"); r.ExitCode != 0 {
		t.Fatal(string(r.Stderr))
	}
	if r := execSync(t, rc, priv, "chmod", "600", "/tmp/f"); r.ExitCode != 0 || mode(priv) != "0" {
		t.Errorf("a privileged container was filtered: %d %s", r.ExitCode, r.Stderr)
	}
	_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "missing"}, Image: &runtime.ImageSpec{Image: busyboxImage},
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Seccomp: &runtime.SecurityProfile{
				ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/nonexistent/profile.json"}}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("a missing localhost profile: %v, want InvalidArgument", err)
	}
	for _, p := range []string{pod, privPod} {
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p}); err != nil {
			t.Fatal(err)
		}
	}
	assertPodGone(t, b, pod, privPod)
}

// This host has neither AppArmor nor SELinux: asking for a profile or a
// label fails clearly and leaves nothing; unconfined and the default work.
func TestLSMRequestsOnAHostWithout(t *testing.T) {
	if _, err := os.Stat("/sys/module/apparmor/parameters/enabled"); err == nil {
		t.Skip("this host has AppArmor")
	}
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("lsm")
	pod := runPod(t, rc, podCfg)
	create := func(name string, sc *runtime.LinuxContainerSecurityContext) error {
		_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: busyboxImage},
				Command: []string{"sleep", "100000"}, Linux: &runtime.LinuxContainerConfig{SecurityContext: sc}}})
		return err
	}
	if err := create("apparmor", &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{
		ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "strict"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an AppArmor profile: %v, want InvalidArgument", err)
	}
	if err := create("selinux", &runtime.LinuxContainerSecurityContext{SelinuxOptions: &runtime.SELinuxOption{Type: "spc_t"}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("an SELinux label: %v, want InvalidArgument", err)
	}
	if err := create("default", &runtime.LinuxContainerSecurityContext{Apparmor: &runtime.SecurityProfile{}}); err != nil {
		t.Errorf("the default AppArmor profile: %v", err)
	}
	if list, _ := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{}); len(list.GetContainers()) != 1 {
		t.Errorf("containers after the refused ones: %d, want 1", len(list.GetContainers()))
	}
	if entries, _ := os.ReadDir(filepath.Join(b.State, "containers")); len(entries) != 1 {
		t.Errorf("container dirs after the refused ones: %d, want 1", len(entries))
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}

// countStream receives a list stream to its end and counts its items.
func countStream[T any](t *testing.T, recv func() (*T, error), items func(*T) int) int {
	t.Helper()
	n := 0
	for {
		m, err := recv()
		if err == io.EOF {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n += items(m)
	}
}

// UpdatePodSandboxResources resizes the pod cgroup Berth owns (resources
// plus overhead); a pod under a kubelet cgroup is left to the kubelet.
func TestUpdatePodSandboxResources(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("podresize")
	pod := runPod(t, rc, podCfg)
	startContainer(t, rc, pod, podCfg, "main", nil, "sleep", "100000")
	_, err := rc.UpdatePodSandboxResources(ctxT(t), &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod,
		Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 256 << 20, CpuQuota: 50000, CpuPeriod: 100000, CpuShares: 512},
		Overhead:  &runtime.LinuxContainerResources{MemoryLimitInBytes: 16 << 20, CpuQuota: 10000}})
	if err != nil {
		t.Fatal(err)
	}
	cg := "/berth/" + pod
	wantQuota, wantShares := "60000", "512"
	if util.Unified() {
		wantQuota, wantShares = "60000 100000", util.CPUWeight(512)
	}
	if m, q, s := util.CgroupFile(t, "memory", cg, "memory.limit_in_bytes", "memory.max"), util.CgroupFile(t, "cpu", cg, "cpu.cfs_quota_us", "cpu.max"),
		util.CgroupFile(t, "cpu", cg, "cpu.shares", "cpu.weight"); m != fmt.Sprint(272<<20) || q != wantQuota || s != wantShares {
		t.Errorf("pod cgroup after the resize: memory %s, quota %s, shares %s", m, q, s)
	}
	_, err = rc.UpdatePodSandboxResources(ctxT(t), &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: "nonesuch"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("resize of a missing pod: %v", err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
