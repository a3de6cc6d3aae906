package cri

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cni"
	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/sandbox"
)

type fakeNetwork struct {
	err      error
	setupErr error
}

func (f fakeNetwork) Status(context.Context) error { return f.err }

func (f fakeNetwork) Setup(_ context.Context, p cni.Pod) (*cni.Attachment, error) {
	if f.setupErr != nil {
		return nil, f.setupErr
	}
	return &cni.Attachment{Network: "test", IPs: []string{"10.0.0.2", "fd00::2"}}, nil
}

func (f fakeNetwork) Teardown(context.Context, cni.Pod) error { return nil }

func (f fakeNetwork) SetPodCIDR(context.Context, string) error { return f.err }

func newTestServer(netErr error) *Server {
	return New(Options{Version: "1.2.3", Config: config.Default(), Network: fakeNetwork{err: netErr}, Pods: memPods{}})
}

// memPods is a pod manager without pods, on a host without user namespaces.
type memPods struct{ PodManager }

func (memPods) List() []*sandbox.Pod                        { return nil }
func (memPods) ProbeUserNamespace(func(string) error) error { return errors.New("no user namespaces") }

func TestVersion(t *testing.T) {
	resp, err := newTestServer(nil).Version(context.Background(), &runtime.VersionRequest{Version: "v1"})
	if err != nil {
		t.Fatal(err)
	}
	want := &runtime.VersionResponse{Version: "0.1.0", RuntimeName: "berth", RuntimeVersion: "1.2.3", RuntimeApiVersion: "v1"}
	if resp.String() != want.String() {
		t.Fatalf("Version = %v, want %v", resp, want)
	}
}

func conditions(resp *runtime.StatusResponse) map[string]*runtime.RuntimeCondition {
	m := map[string]*runtime.RuntimeCondition{}
	for _, c := range resp.GetStatus().GetConditions() {
		m[c.Type] = c
	}
	return m
}

func TestStatus(t *testing.T) {
	resp, err := newTestServer(nil).Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c := conditions(resp)
	if !c[runtime.RuntimeReady].GetStatus() || !c[runtime.NetworkReady].GetStatus() {
		t.Fatalf("conditions = %v, want both ready", resp.Status.Conditions)
	}
	if resp.Info != nil {
		t.Fatalf("non-verbose Status has info %v", resp.Info)
	}
	if f := resp.GetFeatures(); !f.GetSupplementalGroupsPolicy() || !f.GetMountOptions() || f.GetUserNamespacesHostNetwork() || len(resp.RuntimeHandlers) != 1 || resp.RuntimeHandlers[0].Name != "" ||
		resp.RuntimeHandlers[0].GetFeatures().GetUserNamespaces() {
		t.Fatalf("features = %v, handlers = %v", resp.Features, resp.RuntimeHandlers)
	}
}

func TestStatusNetworkNotReady(t *testing.T) {
	resp, err := newTestServer(errors.New("plugin \"bridge\" not found")).Status(context.Background(), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n := conditions(resp)[runtime.NetworkReady]
	if n.GetStatus() || n.Reason != "NetworkPluginNotReady" || n.Message != `plugin "bridge" not found` {
		t.Fatalf("NetworkReady = %v", n)
	}
	if !conditions(resp)[runtime.RuntimeReady].GetStatus() {
		t.Fatal("RuntimeReady false")
	}
}

func TestStatusVerboseHasConfig(t *testing.T) {
	resp, err := newTestServer(nil).Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var got config.Config
	if err := json.Unmarshal([]byte(resp.Info["config"]), &got); err != nil {
		t.Fatalf("info[config] = %q: %v", resp.Info["config"], err)
	}
	if got.Root != "/var/lib/berth" || got.CNI.DefaultBridge != "berth0" {
		t.Fatalf("info[config] = %+v", got)
	}
}

func TestRuntimeConfig(t *testing.T) {
	for driver, want := range map[string]runtime.CgroupDriver{
		config.CgroupfsDriver: runtime.CgroupDriver_CGROUPFS,
		config.SystemdDriver:  runtime.CgroupDriver_SYSTEMD,
	} {
		s := newTestServer(nil)
		s.config.CgroupDriver = driver
		resp, err := s.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetLinux().GetCgroupDriver(); got != want {
			t.Errorf("driver %s: RuntimeConfig = %v, want %v", driver, got, want)
		}
	}
}

func TestNotBuiltRPCsAreUnimplemented(t *testing.T) {
	s := newTestServer(nil)
	_, err := s.CheckpointPod(context.Background(), &runtime.CheckpointPodRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "CheckpointPod") {
		t.Fatalf("CheckpointPod: %v", err)
	}
	_, err = s.CheckpointContainer(context.Background(), &runtime.CheckpointContainerRequest{})
	if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "CheckpointContainer") {
		t.Fatalf("CheckpointContainer: %v", err)
	}
}

func TestUpdateRuntimeConfig(t *testing.T) {
	s := New(Options{Config: config.Default(), Network: cni.New(cni.Options{PodCIDRFile: filepath.Join(t.TempDir(), "pod-cidr")})})
	req := func(cidr string) *runtime.UpdateRuntimeConfigRequest {
		return &runtime.UpdateRuntimeConfigRequest{RuntimeConfig: &runtime.RuntimeConfig{NetworkConfig: &runtime.NetworkConfig{PodCidr: cidr}}}
	}
	for cidr, want := range map[string]codes.Code{"": codes.OK, "10.244.1.0/24": codes.OK, "10.244.1.0/24,fd00::/64": codes.OK,
		"10.244.1.0": codes.InvalidArgument, "x/24": codes.InvalidArgument} {
		if _, err := s.UpdateRuntimeConfig(context.Background(), req(cidr)); status.Code(toGRPC(err)) != want {
			t.Errorf("UpdateRuntimeConfig(%q) = %v, want %v", cidr, err, want)
		}
	}
	if _, err := s.UpdateRuntimeConfig(context.Background(), &runtime.UpdateRuntimeConfigRequest{}); err != nil {
		t.Errorf("UpdateRuntimeConfig without a config: %v", err)
	}
}
