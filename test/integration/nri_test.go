package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// recorder is an NRI plugin that records the events of the pods and
// containers of the test (namespace "it") as "Event:name", adjusts every
// container it is asked about (an env var, an annotation, a read-only bind
// of mountSrc at /nri), and, as validator, refuses containers named
// "forbidden".
type recorder struct {
	mountSrc string
	synced   chan struct{}

	mu         sync.Mutex
	events     []string
	syncedCtrs []*api.Container // what Synchronize reported
}

func (r *recorder) add(event, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event+":"+name)
}

func (r *recorder) seen() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) Synchronize(_ context.Context, _ []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	r.mu.Lock()
	r.syncedCtrs = ctrs
	r.mu.Unlock()
	close(r.synced)
	return nil, nil
}

func (r *recorder) RunPodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.add("RunPodSandbox", p.GetName())
	return nil
}

func (r *recorder) StopPodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.add("StopPodSandbox", p.GetName())
	return nil
}

func (r *recorder) RemovePodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.add("RemovePodSandbox", p.GetName())
	return nil
}

func (r *recorder) CreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	r.add("CreateContainer", c.GetName())
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("NRI_ADDED", "by-recorder")
	adj.AddAnnotation("nri.berth.test/added", "yes")
	adj.AddMount(&api.Mount{Source: r.mountSrc, Destination: "/nri", Type: "bind", Options: []string{"rbind", "ro"}})
	return adj, nil, nil
}

func (r *recorder) PostCreateContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	r.add("PostCreateContainer", c.GetName())
	return nil
}

func (r *recorder) StartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	r.add("StartContainer", c.GetName())
	return nil
}

func (r *recorder) PostStartContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	name := c.GetName()
	if c.GetAnnotations()["nri.berth.test/added"] == "yes" {
		name += "+annotated"
	}
	r.add("PostStartContainer", name)
	return nil
}

func (r *recorder) StopContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	r.add("StopContainer", c.GetName())
	return nil, nil
}

func (r *recorder) RemoveContainer(_ context.Context, _ *api.PodSandbox, c *api.Container) error {
	r.add("RemoveContainer", c.GetName())
	return nil
}

func (r *recorder) ValidateContainerAdjustment(_ context.Context, req *api.ValidateContainerAdjustmentRequest) error {
	if req.GetContainer().GetName() == "forbidden" {
		return fmt.Errorf("containers named forbidden are not allowed here")
	}
	return nil
}

// waitEvent waits until the plugin has seen event.
func waitEvent(t *testing.T, r *recorder, event string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Contains(r.seen(), event) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not see %s; it saw %v", event, r.seen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectRecorder connects a recorder to b's NRI socket and waits for its
// synchronisation.
func connectRecorder(t *testing.T, b *util.Berthd) *recorder {
	t.Helper()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "marker"), []byte("mounted-by-nri\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{mountSrc: src, synced: make(chan struct{})}
	s, err := stub.New(r, stub.WithPluginName("recorder"), stub.WithPluginIdx("10"), stub.WithSocketPath(b.NRISocket),
		stub.WithOnClose(func() {}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	select {
	case <-r.synced:
	case <-time.After(30 * time.Second):
		t.Fatal("the plugin was not synchronised")
	}
	return r
}

// An NRI plugin sees a pod's and its containers' events in order (the
// StopContainer of an init that exited by itself included), its adjustment
// (env, annotation, mount) is in the running container, and a validator's
// refusal fails CreateContainer with FailedPrecondition and leaves nothing.
func TestNRIPlugin(t *testing.T) {
	b, _, rc := containerBerthd(t)
	r := connectRecorder(t, b)

	podCfg := podConfig("nri")
	pod := runPod(t, rc, podCfg)
	ctr := startContainer(t, rc, pod, podCfg, "app", nil, "sleep", "3600")

	env := string(execSync(t, rc, ctr, "env").Stdout)
	if !strings.Contains(env, "NRI_ADDED=by-recorder\n") {
		t.Errorf("env in the container lacks the plugin's NRI_ADDED:\n%s", env)
	}
	if out := string(execSync(t, rc, ctr, "cat", "/nri/marker").Stdout); out != "mounted-by-nri\n" {
		t.Errorf("the plugin's mount shows %q", out)
	}
	if res := execSync(t, rc, ctr, "touch", "/nri/x"); res.ExitCode == 0 {
		t.Error("the plugin's read-only mount is writable")
	}

	_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "forbidden"},
			Image: &runtime.ImageSpec{Image: busyboxImage}, Command: []string{"true"}}})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "not allowed here") {
		t.Errorf("CreateContainer of a refused container = %v; want FailedPrecondition with the validator's words", err)
	}
	list, lerr := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
	if lerr != nil {
		t.Fatal(lerr)
	}
	if len(list.Containers) != 1 || list.Containers[0].Id != ctr {
		t.Errorf("containers after the refusal: %v; want only %s", list.Containers, ctr)
	}
	for _, dir := range []string{filepath.Join(b.Root, "containers"), filepath.Join(b.State, "containers")} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), ctr) {
				t.Errorf("%s left in %s after the refusal", e.Name(), dir)
			}
		}
	}

	// An init that exits by itself: the exit watcher sends StopContainer.
	quick := startContainer(t, rc, pod, podCfg, "quick", nil, "sh", "-c", "sleep 1; exit 3")
	waitExited(t, rc, quick)
	waitEvent(t, r, "StopContainer:quick")
	if _, err := rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: quick}); err != nil {
		t.Fatal(err)
	}

	if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: ctr, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	want := []string{"RunPodSandbox:nri", "CreateContainer:app", "PostCreateContainer:app", "StartContainer:app",
		"PostStartContainer:app+annotated", "CreateContainer:forbidden", "StopContainer:forbidden", "RemoveContainer:forbidden",
		"CreateContainer:quick", "PostCreateContainer:quick", "StartContainer:quick", "PostStartContainer:quick+annotated",
		"StopContainer:quick", "RemoveContainer:quick", "StopContainer:app", "RemoveContainer:app", "StopPodSandbox:nri", "RemovePodSandbox:nri"}
	if got := r.seen(); !slices.Equal(got, want) {
		t.Errorf("events seen by the plugin:\n got %v\nwant %v", got, want)
	}
}

// berthd refuses an NRI socket that another process serves (containerd 2.x
// serves the default one), naming it, unless NRI is off; its own socket
// goes when it stops.
func TestNRISocketOfAnotherProcess(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, "")
	l, err := net.Listen("unix", b.NRISocket)
	if err != nil {
		t.Fatal(err)
	}
	code, out := util.Run(t, bin, b.Args()...)
	if code == 0 || !strings.Contains(out, "served by another process") || !strings.Contains(out, b.NRISocket) {
		t.Fatalf("berthd on a served NRI socket: exit %d, output %q; want a refusal naming it", code, out)
	}
	if _, err := os.Lstat(b.Socket); !os.IsNotExist(err) {
		t.Errorf("berthd created its CRI socket despite the refusal")
	}

	b.DropIn(t, "10-nri-off.toml", "[nri]\nenable = false\n")
	b.Start(t, bin)
	if code := b.Signal(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit %d with NRI off\n%s", code, b.Log())
	}
	l.Close() // removes the socket file

	os.Remove(filepath.Join(b.Dir, "berth.d", "10-nri-off.toml"))
	b.Start(t, bin)
	if fi, err := os.Lstat(b.NRISocket); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("berthd's NRI socket: %v, %v", fi, err)
	}
	if code := b.Signal(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, b.Log())
	}
	if _, err := os.Lstat(b.NRISocket); !os.IsNotExist(err) {
		t.Errorf("NRI socket left after berthd stopped: %v", err)
	}
}

// A plugin that registers after berthd restarted is synchronised with the
// containers as they were created, their spec's part (args, env as adjusted)
// included.
func TestNRISyncAfterRestart(t *testing.T) {
	b, bin, rc := containerBerthd(t)
	connectRecorder(t, b) // its adjustment is in the container's spec
	podCfg := podConfig("nri-restart")
	pod := runPod(t, rc, podCfg)
	ctr := startContainer(t, rc, pod, podCfg, "app", nil, "sleep", "3600")
	if code := b.Signal(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, b.Log())
	}
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	late := connectRecorder(t, b)
	late.mu.Lock()
	ctrs := late.syncedCtrs
	late.mu.Unlock()
	var found *api.Container
	for _, c := range ctrs {
		if c.GetId() == ctr {
			found = c
		}
	}
	if found == nil || found.GetState() != api.ContainerState_CONTAINER_RUNNING || !slices.Equal(found.GetArgs(), []string{"sleep", "3600"}) ||
		!slices.Contains(found.GetEnv(), "NRI_ADDED=by-recorder") || found.GetLinux().GetCgroupsPath() == "" ||
		found.GetAnnotations()["nri.berth.test/added"] != "yes" {
		t.Fatalf("synchronised after a restart: %v", found)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
}
