package nri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
)

func testConfig(t *testing.T) Config {
	dir := t.TempDir()
	return Config{Enable: true, SocketPath: filepath.Join(dir, "nri.sock"), PluginPath: filepath.Join(dir, "plugins"),
		PluginConfigPath: filepath.Join(dir, "conf.d"), RegistrationTimeout: 5 * time.Second, RequestTimeout: 2 * time.Second}
}

func startHost(t *testing.T, d Domain) (*Host, string) {
	t.Helper()
	cfg := testConfig(t)
	h, err := New(cfg, d, WithVersion("test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h, cfg.SocketPath
}

// startPlugin starts p as an external plugin, without waiting for its
// synchronisation.
func startPlugin(t *testing.T, socket, idx, name string, p any) {
	t.Helper()
	s, err := stub.New(p, stub.WithSocketPath(socket), stub.WithPluginIdx(idx), stub.WithPluginName(name), stub.WithOnClose(func() {}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start plugin %s: %v", name, err)
	}
	t.Cleanup(s.Stop)
}

// connect starts p and waits until the host has synchronised it and counts
// it among its plugins.
func connect(t *testing.T, h *Host, socket, idx, name string, p any, synced <-chan struct{}) {
	t.Helper()
	startPlugin(t, socket, idx, name, p)
	waitSynced(t, synced)
	// The library adds the plugin under the sync lock, after the sync.
	h.Block()()
}

func waitSynced(t *testing.T, synced <-chan struct{}) {
	t.Helper()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin not synchronised")
	}
}

func testPod(id string) *api.PodSandbox {
	return &api.PodSandbox{Id: id, Name: "web", Uid: "uid-" + id, Namespace: "default", Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{"a": "b"}, RuntimeHandler: "", Linux: &api.LinuxPodSandbox{CgroupParent: "/kubepods/" + id},
		Ips: []string{"10.88.0.5"}}
}

func testContainer(pod, id string, state api.ContainerState) *api.Container {
	return &api.Container{Id: id, PodSandboxId: pod, Name: "app", State: state, Labels: map[string]string{"c": "d"},
		Args: []string{"/bin/app", "-v"}, Env: []string{"PATH=/usr/bin"}, Linux: &api.LinuxContainer{CgroupsPath: "/kubepods/" + id}}
}

func TestEveryEventInOrderWithItsData(t *testing.T) {
	d := &fakeDomain{}
	h, socket := startHost(t, d)
	r := newRecorder()
	r.adjust = func(c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		adj := &api.ContainerAdjustment{}
		adj.AddEnv("INJECTED", "1")
		adj.AddAnnotation("nri.test/seen", c.GetName())
		adj.SetLinuxMemoryLimit(64 << 20)
		other := &api.ContainerUpdate{ContainerId: "other"}
		other.SetLinuxCPUShares(100)
		return adj, []*api.ContainerUpdate{other}, nil
	}
	r.update = func(c *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
		u := &api.ContainerUpdate{ContainerId: c.GetId()}
		u.SetLinuxCPUShares(777)
		return []*api.ContainerUpdate{u}, nil
	}
	connect(t, h, socket, "10", "recorder", r, r.synced)

	ctx := context.Background()
	pod, ctr := testPod("pod-1"), testContainer("pod-1", "ctr-1", api.ContainerState_CONTAINER_CREATED)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	check(h.RunPodSandbox(ctx, pod))
	check(h.UpdatePodSandbox(ctx, pod, nil, &api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(uint64(1024))}}))
	check(h.PostUpdatePodSandbox(ctx, pod))
	adj, updates, err := h.CreateContainer(ctx, pod, ctr)
	check(err)
	check(h.PostCreateContainer(ctx, pod, ctr))
	ctr.State = api.ContainerState_CONTAINER_RUNNING
	check(h.StartContainer(ctx, pod, ctr))
	check(h.PostStartContainer(ctx, pod, ctr))
	res, err := h.UpdateContainer(ctx, pod, ctr, &api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(uint64(2))}})
	check(err)
	check(h.PostUpdateContainer(ctx, pod, ctr))
	ctr.State, ctr.ExitCode = api.ContainerState_CONTAINER_STOPPED, 137
	check(h.StopContainer(ctx, pod, ctr))
	check(h.StopContainer(ctx, pod, ctr)) // the exit watcher, later: no second event
	check(h.RemoveContainer(ctx, pod, ctr))
	check(h.StopPodSandbox(ctx, pod))
	check(h.StopPodSandbox(ctx, pod))
	check(h.RemovePodSandbox(ctx, pod))

	want(t, r.got(), []string{"RunPodSandbox pod-1", "UpdatePodSandbox pod-1", "PostUpdatePodSandbox pod-1",
		"CreateContainer pod-1/ctr-1", "PostCreateContainer pod-1/ctr-1", "StartContainer pod-1/ctr-1", "PostStartContainer pod-1/ctr-1",
		"UpdateContainer pod-1/ctr-1", "PostUpdateContainer pod-1/ctr-1", "StopContainer pod-1/ctr-1", "RemoveContainer pod-1/ctr-1",
		"StopPodSandbox pod-1", "RemovePodSandbox pod-1"})

	// The data given is the data seen.
	p := r.pods["RunPodSandbox"]
	want(t, []any{p.GetName(), p.GetNamespace(), p.GetUid(), p.GetLabels(), p.GetAnnotations(), p.GetLinux().GetCgroupParent(), p.GetIps()},
		[]any{"web", "default", "uid-pod-1", map[string]string{"app": "web"}, map[string]string{"a": "b"}, "/kubepods/pod-1", []string{"10.88.0.5"}})
	c := r.seen["CreateContainer"]
	want(t, []any{c.GetName(), c.GetArgs(), c.GetLabels(), c.GetLinux().GetCgroupsPath(), c.GetState()},
		[]any{"app", []string{"/bin/app", "-v"}, map[string]string{"c": "d"}, "/kubepods/ctr-1", api.ContainerState_CONTAINER_CREATED})
	s := r.seen["StopContainer"]
	want(t, []any{s.GetState(), s.GetExitCode()}, []any{api.ContainerState_CONTAINER_STOPPED, int32(137)})

	// CreateContainer's adjustment comes back; the update of another
	// container was applied through the domain.
	want(t, []any{adj.GetAnnotations()["nri.test/seen"], adj.GetLinux().GetResources().GetMemory().GetLimit().GetValue()}, []any{"app", int64(64 << 20)})
	if !strings.Contains(fmt.Sprint(adj.GetEnv()), "INJECTED") {
		t.Errorf("adjustment env %v lacks INJECTED", adj.GetEnv())
	}
	want(t, len(updates), 1)
	// UpdateContainer's resources come back as the plugin changed them.
	want(t, res.GetCpu().GetShares().GetValue(), uint64(777))
	want(t, d.updated(), []string{"other shares=100"})
}

func TestRemoveSendsMissingStop(t *testing.T) {
	h, socket := startHost(t, &fakeDomain{})
	r := newRecorder()
	connect(t, h, socket, "10", "recorder", r, r.synced)
	ctx := context.Background()
	pod := testPod("p")
	ctr := testContainer("p", "c", api.ContainerState_CONTAINER_CREATED)
	_ = h.RunPodSandbox(ctx, pod)
	_, _, _ = h.CreateContainer(ctx, pod, ctr)
	_ = h.RemoveContainer(ctx, pod, ctr) // a creation undone
	_ = h.RemovePodSandbox(ctx, pod)
	// A container already stopped before a restart (never seen, state
	// STOPPED) gets no Stop; one never seen and running does.
	_ = h.RemoveContainer(ctx, pod, testContainer("p", "old", api.ContainerState_CONTAINER_STOPPED))
	_ = h.StopContainer(ctx, pod, testContainer("p", "live", api.ContainerState_CONTAINER_RUNNING))
	want(t, r.got(), []string{"RunPodSandbox p", "CreateContainer p/c", "StopContainer p/c", "RemoveContainer p/c",
		"StopPodSandbox p", "RemovePodSandbox p", "RemoveContainer p/old", "StopContainer p/live"})
}

// A plugin that fails CreateContainer fails the creation; the undo's
// RemoveContainer tells plugins the container is gone.
func TestPluginFailsCreate(t *testing.T) {
	h, socket := startHost(t, &fakeDomain{})
	r := newRecorder()
	r.adjust = func(c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		return nil, nil, errors.New("induced failure")
	}
	connect(t, h, socket, "10", "failing", r, r.synced)
	ctx := context.Background()
	pod, ctr := testPod("p"), testContainer("p", "c", api.ContainerState_CONTAINER_CREATED)
	adj, _, err := h.CreateContainer(ctx, pod, ctr)
	if err == nil || !strings.Contains(err.Error(), "induced failure") || adj != nil {
		t.Fatalf("CreateContainer = %v, %v; want the plugin's error", adj, err)
	}
	if err := h.RemoveContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	want(t, r.got(), []string{"CreateContainer p/c", "StopContainer p/c", "RemoveContainer p/c"})
}

func TestLatePluginIsSynchronised(t *testing.T) {
	d := &fakeDomain{}
	h, socket := startHost(t, d)
	ctx := context.Background()
	pod := testPod("p")
	ctr := testContainer("p", "c", api.ContainerState_CONTAINER_RUNNING)
	if err := h.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	d.add(pod, ctr)

	r := newRecorder()
	connect(t, h, socket, "10", "late", r, r.synced)
	r.syncer.mu.Lock()
	pods, ctrs := r.syncPods, r.syncCtrs
	r.syncer.mu.Unlock()
	want(t, len(pods), 1)
	want(t, []any{pods[0].GetId(), pods[0].GetName(), pods[0].GetLabels()}, []any{"p", "web", map[string]string{"app": "web"}})
	want(t, len(ctrs), 1)
	want(t, []any{ctrs[0].GetId(), ctrs[0].GetState(), ctrs[0].GetArgs()}, []any{"c", api.ContainerState_CONTAINER_RUNNING, []string{"/bin/app", "-v"}})

	// It then sees the events of what it was synchronised with.
	ctr.State = api.ContainerState_CONTAINER_STOPPED
	if err := h.StopContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	want(t, r.got(), []string{"StopContainer p/c"})
}

// A plugin that registers while a container is being made waits for it:
// it finds the container in its synchronisation, never misses it.
func TestSynchronisationWaitsForCreationsInFlight(t *testing.T) {
	d := &fakeDomain{}
	h, socket := startHost(t, d)
	ctx := context.Background()
	pod := testPod("p")
	d.add(pod, nil)

	unblock := h.Block() // CreateContainer in flight
	ctr := testContainer("p", "c", api.ContainerState_CONTAINER_CREATED)
	if _, _, err := h.CreateContainer(ctx, pod, ctr); err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	startPlugin(t, socket, "10", "late", r)
	select {
	case <-r.synced:
		t.Fatal("plugin synchronised while a creation held the sync lock")
	case <-time.After(300 * time.Millisecond):
	}
	d.add(nil, ctr) // the record is committed
	unblock()
	waitSynced(t, r.synced)
	r.syncer.mu.Lock()
	n := len(r.syncCtrs)
	r.syncer.mu.Unlock()
	want(t, n, 1)
	want(t, len(r.got()), 0) // it saw no CreateContainer: the list had it
}

// validator rejects adjustments that set an annotation it forbids.
type validator struct{ syncer }

func (v *validator) ValidateContainerAdjustment(_ context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	if _, ok := req.GetAdjust().GetAnnotations()["forbidden"]; ok {
		return fmt.Errorf("annotation %q is not allowed (owners: %v)", "forbidden", req.GetPlugins())
	}
	return nil
}

func TestValidatorRejects(t *testing.T) {
	h, socket := startHost(t, &fakeDomain{})
	r := newRecorder()
	r.adjust = func(c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
		adj := &api.ContainerAdjustment{}
		if c.GetName() == "bad" {
			adj.AddAnnotation("forbidden", "1")
		}
		return adj, nil, nil
	}
	connect(t, h, socket, "10", "adjuster", r, r.synced)
	v := &validator{newSyncer()}
	connect(t, h, socket, "90", "validator", v, v.synced)

	ctx := context.Background()
	pod := testPod("p")
	good := testContainer("p", "good", api.ContainerState_CONTAINER_CREATED)
	if _, _, err := h.CreateContainer(ctx, pod, good); err != nil {
		t.Fatalf("a valid adjustment was rejected: %v", err)
	}
	bad := testContainer("p", "bad", api.ContainerState_CONTAINER_CREATED)
	bad.Name = "bad"
	adj, _, err := h.CreateContainer(ctx, pod, bad)
	if err == nil || !strings.Contains(err.Error(), "forbidden") || adj != nil {
		t.Fatalf("CreateContainer = %v, %v; want the validator's rejection", adj, err)
	}
}

// A plugin's unsolicited updates reach the domain; those that fail come back.
func TestUnsolicitedUpdates(t *testing.T) {
	d := &fakeDomain{}
	h, socket := startHost(t, d)
	r := newRecorder()
	s, err := stub.New(r, stub.WithSocketPath(socket), stub.WithPluginIdx("10"), stub.WithPluginName("updater"), stub.WithOnClose(func() {}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	waitSynced(t, r.synced)
	h.Block()()
	ok, missing, ignored := &api.ContainerUpdate{ContainerId: "c1"}, &api.ContainerUpdate{ContainerId: "missing"},
		&api.ContainerUpdate{ContainerId: "missing", IgnoreFailure: true}
	ok.SetLinuxCPUShares(5)
	missing.SetLinuxCPUShares(6)
	ignored.SetLinuxCPUShares(7)
	failed, err := s.UpdateContainers([]*api.ContainerUpdate{ok, missing, ignored})
	if err != nil || len(failed) != 1 || failed[0].GetContainerId() != "missing" {
		t.Fatalf("UpdateContainers = %v, %v; want the missing container's update back", failed, err)
	}
	want(t, d.updated(), []string{"c1 shares=5"})
}

func TestDisabledHostDoesNothing(t *testing.T) {
	cfg := testConfig(t)
	cfg.Enable = false
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	if _, err := os.Lstat(cfg.SocketPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("disabled host made its socket: %v", err)
	}
	h.Block()()
	pod, ctr := testPod("p"), testContainer("p", "c", api.ContainerState_CONTAINER_CREATED)
	res := &api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(uint64(2))}}
	adj, updates, err := h.CreateContainer(ctx, pod, ctr)
	got, uerr := h.UpdateContainer(ctx, pod, ctr, res)
	errs := []error{err, uerr, h.RunPodSandbox(ctx, pod), h.UpdatePodSandbox(ctx, pod, nil, res), h.PostUpdatePodSandbox(ctx, pod),
		h.PostCreateContainer(ctx, pod, ctr), h.StartContainer(ctx, pod, ctr), h.PostStartContainer(ctx, pod, ctr),
		h.PostUpdateContainer(ctx, pod, ctr), h.StopContainer(ctx, pod, ctr), h.RemoveContainer(ctx, pod, ctr),
		h.StopPodSandbox(ctx, pod), h.RemovePodSandbox(ctx, pod)}
	if err := errors.Join(errs...); err != nil || adj != nil || updates != nil || got != res || h.Enabled() {
		t.Fatalf("disabled host: %v %v %v %v", err, adj, updates, got)
	}
}

// Hooks before Start relay nothing and do not block.
func TestHooksBeforeStartDoNothing(t *testing.T) {
	h, err := New(testConfig(t), &fakeDomain{})
	if err != nil {
		t.Fatal(err)
	}
	adj, _, err := h.CreateContainer(context.Background(), testPod("p"), testContainer("p", "c", api.ContainerState_CONTAINER_CREATED))
	if err != nil || adj != nil {
		t.Fatalf("CreateContainer before Start = %v, %v", adj, err)
	}
}

func TestStartRefusesForeignSocket(t *testing.T) {
	cfg := testConfig(t)
	l, err := net.Listen("unix", cfg.SocketPath)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // a live server: it accepts
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	h, err := New(cfg, &fakeDomain{})
	if err != nil {
		t.Fatal(err)
	}
	err = h.Start(context.Background())
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), cfg.SocketPath) || !strings.Contains(err.Error(), "socket_path") {
		t.Fatalf("Start = %v, want a refusal naming the socket and the key", err)
	}
	// The other server's socket is untouched and still answers.
	c, err := net.Dial("unix", cfg.SocketPath)
	if err != nil {
		t.Fatalf("foreign socket broken: %v", err)
	}
	c.Close()
}

func TestStartRefusesNonSocket(t *testing.T) {
	cfg := testConfig(t)
	if err := os.WriteFile(cfg.SocketPath, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg, &fakeDomain{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("Start = %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(cfg.SocketPath); string(b) != "keep me" {
		t.Fatal("Start replaced a file that is not a socket")
	}
}

func TestStartReplacesStaleSocket(t *testing.T) {
	cfg := testConfig(t)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.SocketPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // as a crashed server leaves it
	h, err := New(cfg, &fakeDomain{})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Start(context.Background()); err != nil {
		t.Fatalf("Start on a stale socket: %v", err)
	}
	defer h.Stop()
	r := newRecorder()
	connect(t, h, cfg.SocketPath, "10", "after-stale", r, r.synced)
}

func TestNewChecksConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no socket":  {Enable: true, RegistrationTimeout: time.Second, RequestTimeout: time.Second},
		"no timeout": {Enable: true, SocketPath: "/run/x.sock"},
	} {
		if _, err := New(cfg, &fakeDomain{}); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: New = %v", name, err)
		}
	}
	if _, err := New(Config{Enable: true}, nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("no domain: New = %v", err)
	}
}

func TestContainerSpec(t *testing.T) {
	s := baseSpec()
	s.Process.OOMScoreAdj = ptr(100)
	var c api.Container
	ContainerSpec(&c, s)
	want(t, []any{c.GetArgs(), c.GetEnv(), len(c.GetMounts()), c.GetRlimits()[0].GetType(), c.GetLinux().GetCgroupsPath(),
		c.GetLinux().GetOomScoreAdj().GetValue(), c.GetLinux().GetResources().GetMemory().GetLimit().GetValue(), len(c.GetLinux().GetNamespaces()),
		c.GetLinux().GetDevices()[0].GetPath(), c.GetLinux().GetSysctl()["kernel.msgmax"]},
		[]any{s.Process.Args, s.Process.Env, 4, "RLIMIT_NOFILE", "/kubepods/pod1/ctr1", int64(100), int64(100 << 20), 3, "/dev/null", "8192"})
	if reflect.DeepEqual(&c, &api.Container{}) {
		t.Fatal("nothing filled")
	}
}
