package cri

import (
	"context"
	"os"
	"testing"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox"
)

// TestImageMountRefusals pins what an image mount must be before anything is
// mounted: named, read-only, of a pulled image, in a pod without a user
// namespace of its own; nothing is left in the container's dir.
func TestImageMountRefusals(t *testing.T) {
	state := t.TempDir()
	imgs := &fakeImages{imgs: map[string]*images.Image{"busybox": {ID: "sha256:abc"}}}
	s := New(Options{Config: config.Default(), Images: imgs, StateDir: state, Pods: memPods{}})
	plain := &sandbox.Pod{ID: "p"}
	for _, tc := range []struct {
		name  string
		mount *runtime.Mount
		pod   *sandbox.Pod
		is    func(error) bool
	}{
		{"writable", &runtime.Mount{ContainerPath: "/m", Image: &runtime.ImageSpec{Image: "busybox"}}, plain, errdefs.IsInvalidArgument},
		{"unnamed", &runtime.Mount{ContainerPath: "/m", Readonly: true, Image: &runtime.ImageSpec{}}, plain, errdefs.IsInvalidArgument},
		{"not pulled", &runtime.Mount{ContainerPath: "/m", Readonly: true, Image: &runtime.ImageSpec{Image: "nginx"}}, plain, errdefs.IsNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &runtime.ContainerConfig{Mounts: []*runtime.Mount{{ContainerPath: "/h", HostPath: "/tmp"}, tc.mount}}
			_, _, err := s.mountImages(context.Background(), "c1", cfg, tc.pod, "")
			if !tc.is(err) {
				t.Fatalf("err = %v", err)
			}
			if _, err := os.Stat(s.containerDir("c1")); !os.IsNotExist(err) {
				t.Fatalf("container dir made: %v", err)
			}
		})
	}
}

// TestImageMountsWithoutImages leaves a config without image mounts as it is
// (a host path mount with an empty ImageSpec is no image mount).
func TestImageMountsWithoutImages(t *testing.T) {
	s := New(Options{Config: config.Default(), Images: &fakeImages{}, StateDir: t.TempDir(), Pods: memPods{}})
	cfg := &runtime.ContainerConfig{Mounts: []*runtime.Mount{{ContainerPath: "/h", HostPath: "/tmp"},
		{ContainerPath: "/i", HostPath: "/tmp", Image: &runtime.ImageSpec{}}}}
	got, refs, err := s.mountImages(context.Background(), "c1", cfg, &sandbox.Pod{}, "")
	if err != nil || got != cfg || len(refs) != 0 {
		t.Fatalf("got %v, %v, %v", got, refs, err)
	}
}

func TestSnapshotOwner(t *testing.T) {
	for key, want := range map[string]string{"abc": "abc", imageMountKey("abc", 3): "abc"} {
		if got := snapshotOwner(key); got != want {
			t.Errorf("snapshotOwner(%q) = %q, want %q", key, got, want)
		}
	}
}
