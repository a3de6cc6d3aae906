package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
)

// memOS pretends to pin and mount (sandbox.OS), for tests without root.
type memOS struct{ fail bool }

func (m memOS) PinNamespaces(dir string, req sandbox.NamespaceRequest) (map[string]string, error) {
	if m.fail {
		return nil, errors.New("injected failure")
	}
	pins := map[string]string{}
	os.MkdirAll(dir, 0o700)
	for _, k := range req.Kinds {
		pins[k] = filepath.Join(dir, k)
		os.WriteFile(pins[k], nil, 0o400)
	}
	return pins, nil
}
func (memOS) UnpinNamespaces(map[string]string) error    { return nil }
func (memOS) MountShm(p string, _ int64, _ string) error { return os.MkdirAll(p, 0o755) }
func (memOS) Unmount(string) error                       { return nil }
func (memOS) IsMountPoint(string) bool                   { return true }
func (memOS) ProbeUserNamespace(func(string) error) error {
	return errors.New("no user namespaces")
}

func newPodServer(t testing.TB, osys sandbox.OS) *Server {
	t.Helper()
	pods, err := sandbox.NewManager(osys, t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{Config: config.Default(), Network: fakeNetwork{}, Pods: pods})
}

func TestPodNetworkStatusAndFailedAttach(t *testing.T) {
	s := newPodServer(t, memOS{})
	ctx := context.Background()
	run, err := s.RunPodSandbox(ctx, runReq("web"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: run.PodSandboxId})
	if err != nil || st.Status.Network.Ip != "10.0.0.2" || len(st.Status.Network.AdditionalIps) != 1 || st.Status.Network.AdditionalIps[0].Ip != "fd00::2" {
		t.Fatalf("network status = %v, %v", st.GetStatus().GetNetwork(), err)
	}

	s.network = fakeNetwork{setupErr: errors.New("injected ADD failure")}
	if _, err := s.RunPodSandbox(ctx, runReq("db")); err == nil {
		t.Fatal("run succeeded although the network attach failed")
	}
	if n := len(s.pods.List()); n != 1 {
		t.Fatalf("%d pods after a failed attach, want only the first", n)
	}
	s.network = fakeNetwork{}
	if _, err := s.RunPodSandbox(ctx, runReq("db")); err != nil {
		t.Fatalf("the name stayed reserved after a failed attach: %v", err)
	}
}

func TestBandwidth(t *testing.T) {
	for in, want := range map[string]int64{"": 0, "10M": 10e6, "1Gi": 1 << 30, "500k": 500e3, "1000": 1000} {
		if got, err := bandwidth(in); err != nil || got != want {
			t.Errorf("bandwidth(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"fast", "-1M", "10X"} {
		if _, err := bandwidth(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("bandwidth(%q) = %v", bad, err)
		}
	}
}

func runReq(name string) *runtime.RunPodSandboxRequest {
	return &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "ns", Uid: "uid-" + name, Attempt: 1},
		Hostname: name, Labels: map[string]string{"app": name}, Annotations: map[string]string{"a": "b"},
	}}
}

func TestPodLifecycle(t *testing.T) {
	s := newPodServer(t, memOS{})
	ctx := context.Background()
	run, err := s.RunPodSandbox(ctx, runReq("web"))
	if err != nil {
		t.Fatal(err)
	}
	id := run.PodSandboxId
	st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id[:12], Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Status.Id != id || st.Status.State != runtime.PodSandboxState_SANDBOX_READY || st.Status.Metadata.Attempt != 1 ||
		st.Status.Labels["app"] != "web" || st.Status.Annotations["a"] != "b" || st.Info["info"] == "" {
		t.Fatalf("status = %v", st)
	}
	if _, err := s.RunPodSandbox(ctx, runReq("web")); status.Code(toGRPC(err)) != codes.AlreadyExists {
		t.Fatalf("duplicate run = %v", err)
	}
	s.RunPodSandbox(ctx, runReq("db"))
	list := func(f *runtime.PodSandboxFilter) int {
		resp, err := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Items)
	}
	if n := list(nil); n != 2 {
		t.Fatalf("list = %d", n)
	}
	if n := list(&runtime.PodSandboxFilter{LabelSelector: map[string]string{"app": "web"}}); n != 1 {
		t.Fatalf("label filter = %d", n)
	}
	if n := list(&runtime.PodSandboxFilter{Id: id[:8]}); n != 1 {
		t.Fatalf("id prefix filter = %d", n)
	}

	for i := 0; i < 2; i++ {
		if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	notReady := &runtime.PodSandboxFilter{State: &runtime.PodSandboxStateValue{State: runtime.PodSandboxState_SANDBOX_NOTREADY}}
	if n := list(notReady); n != 1 {
		t.Fatalf("NOTREADY filter = %d", n)
	}
	for i := 0; i < 2; i++ {
		if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id}); status.Code(toGRPC(err)) != codes.NotFound {
		t.Fatalf("status of a removed pod = %v", err)
	}
	// The name is free again.
	if _, err := s.RunPodSandbox(ctx, runReq("web")); err != nil {
		t.Fatalf("run after remove: %v", err)
	}
}

func TestPodIdempotenceOfUnknown(t *testing.T) {
	s := newPodServer(t, memOS{})
	ctx := context.Background()
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: "nope"}); err != nil {
		t.Fatalf("stop unknown: %v", err)
	}
	if _, err := s.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: "nope"}); err != nil {
		t.Fatalf("remove unknown: %v", err)
	}
}

func TestRunPodSandboxBadInput(t *testing.T) {
	s := newPodServer(t, memOS{})
	ctx := context.Background()
	noUID := runReq("x")
	noUID.Config.Metadata.Uid = ""
	handler := runReq("y")
	handler.RuntimeHandler = "kata"
	for name, req := range map[string]*runtime.RunPodSandboxRequest{"no uid": noUID, "unknown handler": handler, "no config": {}} {
		if _, err := s.RunPodSandbox(ctx, req); status.Code(toGRPC(err)) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if _, err := s.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("stop with empty id: %v", err)
	}
}

// A configured runtime handler runs pods, which report it; Status lists it
// after the default one; images are pulled for it.
func TestRuntimeHandlers(t *testing.T) {
	s := newPodServer(t, memOS{})
	s.config.RuntimeHandlers = map[string]config.RuntimeHandler{"test-handler": {}, "b-handler": {PrivilegedWithoutHostDevices: true}}
	ctx := context.Background()
	req := runReq("web")
	req.RuntimeHandler = "test-handler"
	run, err := s.RunPodSandbox(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: run.PodSandboxId})
	if err != nil || st.GetStatus().GetRuntimeHandler() != "test-handler" {
		t.Fatalf("status = %v, %v; want the handler", st.GetStatus(), err)
	}
	list, _ := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if len(list.GetItems()) != 1 || list.Items[0].RuntimeHandler != "test-handler" {
		t.Fatalf("list = %v", list.GetItems())
	}
	var names []string
	for _, h := range s.runtimeHandlers() {
		names = append(names, h.Name)
	}
	if !slices.Equal(names, []string{"", "b-handler", "test-handler"}) {
		t.Fatalf("handlers %q", names)
	}
}

func TestRunPodSandboxFailureFreesName(t *testing.T) {
	s := newPodServer(t, memOS{fail: true})
	if _, err := s.RunPodSandbox(context.Background(), runReq("web")); err == nil {
		t.Fatal("run succeeded despite the failure")
	}
	s.pods = mustPods(t)
	if _, err := s.RunPodSandbox(context.Background(), runReq("web")); err != nil {
		t.Fatalf("the name stayed reserved after a failed run: %v", err)
	}
}

func mustPods(t *testing.T) PodManager {
	pods, err := sandbox.NewManager(memOS{}, t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// A retry of a Run whose caller gave up gets the pod the first call made.
func TestRunPodSandboxRetryAfterTimeout(t *testing.T) {
	s := newPodServer(t, memOS{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the kubelet's first call timed out
	if _, err := s.RunPodSandbox(ctx, runReq("web")); err == nil {
		t.Fatal("cancelled run reported success")
	}
	pods := s.pods.List()
	if len(pods) != 1 {
		t.Fatalf("%d pods after the timed-out run, want the finished one", len(pods))
	}
	resp, err := s.RunPodSandbox(context.Background(), runReq("web"))
	if err != nil || resp.PodSandboxId != pods[0].ID {
		t.Fatalf("retry = %v, %v; want pod %s", resp, err, pods[0].ID)
	}
	if _, err := s.RunPodSandbox(context.Background(), runReq("web")); status.Code(toGRPC(err)) != codes.AlreadyExists {
		t.Fatalf("a second duplicate = %v, want AlreadyExists", err)
	}
}

// The kubelet relists every second: 100 pods, from memory.
func BenchmarkListPodSandbox100(b *testing.B) {
	s := newPodServer(b, memOS{})
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.RunPodSandbox(ctx, runReq(fmt.Sprint("pod", i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		if resp, err := s.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err != nil || len(resp.Items) != 100 {
			b.Fatal(resp, err)
		}
	}
}

// TestUserNamespaceRequests checks the user namespace requests refused before
// anything is made (memOS cannot make user namespaces: a valid POD request is
// FailedPrecondition there; test/integration runs them for real).
func TestUserNamespaceRequests(t *testing.T) {
	one := []*runtime.IDMapping{{HostId: 100000, Length: 65536}}
	pod := func(uids, gids []*runtime.IDMapping) *runtime.UserNamespace {
		return &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: uids, Gids: gids}
	}
	for _, tc := range []struct {
		u       *runtime.UserNamespace
		network runtime.NamespaceMode
		code    codes.Code
	}{
		{nil, runtime.NamespaceMode_POD, codes.OK},
		{&runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE}, runtime.NamespaceMode_POD, codes.OK},
		{&runtime.UserNamespace{Mode: runtime.NamespaceMode_NODE, Uids: one, Gids: one}, runtime.NamespaceMode_POD, codes.InvalidArgument},
		{pod(one, one), runtime.NamespaceMode_POD, codes.FailedPrecondition},
		{pod(one, one), runtime.NamespaceMode_NODE, codes.InvalidArgument},
		{pod(append(one, &runtime.IDMapping{ContainerId: 65536, HostId: 300000, Length: 10}), one), runtime.NamespaceMode_POD, codes.InvalidArgument},
		{pod([]*runtime.IDMapping{{ContainerId: 1, HostId: 100000, Length: 65536}}, one), runtime.NamespaceMode_POD, codes.InvalidArgument},
		{pod(one, nil), runtime.NamespaceMode_POD, codes.InvalidArgument},
		{&runtime.UserNamespace{Mode: runtime.NamespaceMode_CONTAINER}, runtime.NamespaceMode_POD, codes.InvalidArgument},
		{&runtime.UserNamespace{Mode: runtime.NamespaceMode_TARGET}, runtime.NamespaceMode_POD, codes.InvalidArgument},
	} {
		s := newPodServer(t, memOS{})
		req := runReq("userns")
		req.Config.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: tc.u, Network: tc.network}}}
		_, err := s.RunPodSandbox(context.Background(), req)
		if got := status.Code(toGRPC(err)); got != tc.code {
			t.Errorf("%v: %v, want %v", tc.u, err, tc.code)
		}
	}
}

// SELinux options on a host without SELinux are refused, not dropped.
func TestPodSELinuxOptionsWithoutSELinux(t *testing.T) {
	if container.SELinuxEnabled() {
		t.Skip("this host runs SELinux")
	}
	s := newPodServer(t, memOS{})
	req := runReq("selinux")
	req.Config.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		SelinuxOptions: &runtime.SELinuxOption{Level: "s0:c1,c2"}}}
	if _, err := s.RunPodSandbox(context.Background(), req); status.Code(toGRPC(err)) != codes.InvalidArgument {
		t.Fatalf("SELinux options without SELinux: %v, want InvalidArgument", err)
	}
	if list, _ := s.ListPodSandbox(context.Background(), &runtime.ListPodSandboxRequest{}); len(list.GetItems()) != 0 {
		t.Fatalf("pods left: %v", list.GetItems())
	}
}
