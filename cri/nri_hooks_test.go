package cri

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/nri"
	"github.com/berth-cri/berth/sandbox/container"
)

// podPlugin records pod events and refuses a pod named "refused".
type podPlugin struct {
	synced chan struct{}
	mu     sync.Mutex
	events []string
	pods   []*api.PodSandbox
}

func (p *podPlugin) add(ev string, pod *api.PodSandbox) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev+":"+pod.GetName())
	p.pods = append(p.pods, pod)
}

func (p *podPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

func (p *podPlugin) Synchronize(context.Context, []*api.PodSandbox, []*api.Container) ([]*api.ContainerUpdate, error) {
	close(p.synced)
	return nil, nil
}

func (p *podPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.add("Run", pod)
	if pod.GetName() == "refused" {
		return errors.New("no pods named refused")
	}
	return nil
}

func (p *podPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.add("Stop", pod)
	return nil
}

func (p *podPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.add("Remove", pod)
	return nil
}

func nriServer(t *testing.T) (*Server, *podPlugin) {
	t.Helper()
	s := newPodServer(t, memOS{})
	socket := filepath.Join(t.TempDir(), "nri.sock")
	h, err := nri.New(nri.Config{Enable: true, SocketPath: socket, PluginPath: t.TempDir(), PluginConfigPath: t.TempDir(),
		RegistrationTimeout: 5 * time.Second, RequestTimeout: 5 * time.Second}, s.NRIDomain())
	if err != nil {
		t.Fatal(err)
	}
	s.UseNRI(h)
	if err := h.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	p := &podPlugin{synced: make(chan struct{})}
	st, err := stub.New(p, stub.WithPluginName("pods"), stub.WithPluginIdx("10"), stub.WithSocketPath(socket), stub.WithOnClose(func() {}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	select {
	case <-p.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("plugin not synchronised")
	}
	h.Block()() // the library adds the plugin after its sync, under the sync lock
	return s, p
}

// Plugins see a pod's events in order with its data, and a refusal of
// RunPodSandbox fails it with FailedPrecondition, leaving no pod and the
// name free.
func TestNRIPodEvents(t *testing.T) {
	s, p := nriServer(t)
	ctx := context.Background()
	run, err := s.RunPodSandbox(ctx, runReq("web"))
	if err != nil {
		t.Fatal(err)
	}
	pods, _, err := s.NRIDomain().List(ctx)
	if err != nil || len(pods) != 1 || pods[0].GetId() != run.PodSandboxId || pods[0].GetLabels()["app"] != "web" ||
		pods[0].GetAnnotations()["a"] != "b" || pods[0].GetLinux().GetCgroupParent() != "/berth/"+run.PodSandboxId ||
		len(pods[0].GetLinux().GetNamespaces()) == 0 {
		t.Fatalf("Domain.List = %v, %v", pods, err)
	}
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: run.PodSandboxId}); err != nil {
		t.Fatal(err)
	}

	_, err = s.RunPodSandbox(ctx, runReq("refused"))
	if status.Code(toGRPC(err)) != codes.FailedPrecondition {
		t.Fatalf("refused RunPodSandbox = %v, want FailedPrecondition", err)
	}
	if list, _ := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); len(list.Items) != 0 {
		t.Fatalf("pods after a refusal: %v", list.Items)
	}
	want := []string{"Run:web", "Stop:web", "Remove:web", "Run:refused", "Stop:refused", "Remove:refused"}
	if got := p.seen(); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

func TestNRIConversions(t *testing.T) {
	for st, want := range map[container.State]api.ContainerState{container.Created: api.ContainerState_CONTAINER_CREATED,
		container.Running: api.ContainerState_CONTAINER_RUNNING, container.Exited: api.ContainerState_CONTAINER_STOPPED,
		container.Unknown: api.ContainerState_CONTAINER_UNKNOWN} {
		if got := nriState(st); got != want {
			t.Errorf("nriState(%s) = %v, want %v", st, got, want)
		}
	}
	got := mergeAnnotations(map[string]string{"a": "1", "b": "2"}, map[string]string{"b": "3", "c": "4"})
	if len(got) != 3 || got["a"] != "1" || got["b"] != "3" || got["c"] != "4" {
		t.Errorf("mergeAnnotations = %v", got)
	}
	r := (&api.LinuxResources{Cpu: &api.LinuxCPU{Shares: api.UInt64(512), Quota: api.Int64(50000), Period: api.UInt64(100000), Cpus: "0"},
		Memory: &api.LinuxMemory{Limit: api.Int64(1 << 26)}}).ToOCI()
	rec := recordFromOCI(r, &container.Resources{OOMScoreAdj: 10, CPUShares: 2, CpusetMems: "0", MemorySwapLimit: 1 << 27})
	want := container.Resources{CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512, MemoryLimit: 1 << 26, CpusetCPUs: "0",
		OOMScoreAdj: 10, CpusetMems: "0", MemorySwapLimit: 1 << 27}
	if !reflect.DeepEqual(*rec, want) {
		t.Errorf("recordFromOCI = %+v, want %+v", rec, want)
	}
}
