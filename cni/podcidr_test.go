package cni

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
)

func TestPodCIDR(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "cni", "pod-cidr")
	m := New(Options{PodCIDRFile: file})
	if got := m.defaultSubnets(ctx); !slices.Equal(got, []string{FallbackSubnet}) {
		t.Fatalf("no pod CIDR yet: subnets %v", got)
	}
	for _, bad := range []string{"10.244.1.0", "10.244.1.0/33", "10.244.1.0/24,nope"} {
		if err := m.SetPodCIDR(ctx, bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("SetPodCIDR(%q) = %v, want invalid argument", bad, err)
		}
	}
	if err := m.SetPodCIDR(ctx, "10.244.1.7/24, fd00:1::/64"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPodCIDR(ctx, ""); err != nil { // changes nothing
		t.Fatal(err)
	}
	want := []string{"10.244.1.0/24", "fd00:1::/64"}
	if got := m.defaultSubnets(ctx); !slices.Equal(got, want) {
		t.Fatalf("subnets %v, want %v", got, want)
	}
	if got := New(Options{PodCIDRFile: file}).defaultSubnets(ctx); !slices.Equal(got, want) {
		t.Fatalf("after a restart: subnets %v, want %v", got, want)
	}
	chosen := New(Options{PodCIDRFile: file, DefaultSubnet: "10.9.0.0/16"})
	if got := chosen.defaultSubnets(ctx); !slices.Equal(got, []string{"10.9.0.0/16"}) {
		t.Fatalf("a subnet set in the config must win: %v", got)
	}
	conf, err := defaultNetworkConfig("", want, "", false)
	if err != nil {
		t.Fatal(err)
	}
	list, err := m.defaultNetwork(ctx, false)
	if err != nil || string(list.Bytes) != string(conf) {
		t.Fatalf("default network %s, %v; want %s", list.Bytes, err, conf)
	}
}
