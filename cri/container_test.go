package cri

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestPodTotal(t *testing.T) {
	r := &runtime.LinuxContainerResources{CpuShares: 512, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 256 << 20, CpusetCpus: "0"}
	o := &runtime.LinuxContainerResources{CpuShares: 10, CpuQuota: 1000, MemoryLimitInBytes: 16 << 20, CpusetCpus: "1"}
	got := podTotal(r, o)
	if got.CpuShares != 522 || got.CpuQuota != 51000 || got.CpuPeriod != 100000 || got.MemoryLimitInBytes != 272<<20 || got.CpusetCpus != "0" {
		t.Fatalf("total = %v", got)
	}
	// No limit stays no limit, whatever the overhead.
	if got := podTotal(&runtime.LinuxContainerResources{}, o); got.MemoryLimitInBytes != 0 || got.CpuQuota != 0 {
		t.Fatalf("unlimited total = %v", got)
	}
}

func TestOpenImageVolumes(t *testing.T) {
	for _, userns := range []bool{false, true} {
		mounts := []specs.Mount{{Destination: "/data", Source: t.TempDir(), Options: []string{"rbind", "rprivate", "rw"}}}
		if err := openImageVolumes(mounts, userns, ""); err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(mounts[0].Options, "ridmap"); got != userns {
			t.Errorf("user namespace %v: options %v", userns, mounts[0].Options)
		}
	}
}

// TestMountsRoundTrip: ContainerStatus shows a mount as CreateContainer got it,
// its mount_options included.
func TestMountsRoundTrip(t *testing.T) {
	in := []*runtime.Mount{
		{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true, SelinuxRelabel: true,
			Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER, MountOptions: []string{"noexec", "nosuid"}},
		{ContainerPath: "/img", HostPath: "/var/lib/berth/x", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: "bin"},
	}
	got := criMounts(recordMounts(in, map[int]string{1: "sha256:abc"}))
	in[1].Image.ImageRef = "sha256:abc"
	if len(got) != len(in) {
		t.Fatalf("got %v", got)
	}
	for i := range in {
		if !proto.Equal(got[i], in[i]) {
			t.Errorf("mount %d: got %v, want %v", i, got[i], in[i])
		}
	}
}
