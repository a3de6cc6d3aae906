package cri

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/images"
)

// TestImageMountRefusals pins what an image mount must be before anything is
// mounted: named, read-only, of a pulled image.
func TestImageMountRefusals(t *testing.T) {
	imgs := &fakeImages{imgs: map[string]*images.Image{"busybox": {ID: "sha256:abc"}}}
	s := New(Options{Config: config.Default(), Images: imgs, StateDir: t.TempDir(), Pods: memPods{}})
	for _, tc := range []struct {
		name  string
		mount *runtime.Mount
		is    func(error) bool
	}{
		{"writable", &runtime.Mount{ContainerPath: "/m", Image: &runtime.ImageSpec{Image: "busybox"}}, errdefs.IsInvalidArgument},
		{"unnamed", &runtime.Mount{ContainerPath: "/m", Readonly: true, Image: &runtime.ImageSpec{}}, errdefs.IsInvalidArgument},
		{"not pulled", &runtime.Mount{ContainerPath: "/m", Readonly: true, Image: &runtime.ImageSpec{Image: "nginx"}}, errdefs.IsNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &runtime.ContainerConfig{Mounts: []*runtime.Mount{{ContainerPath: "/h", HostPath: "/tmp"}, tc.mount}}
			if _, err := s.imageMounts(context.Background(), cfg); !tc.is(err) {
				t.Fatalf("err = %v", err)
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
	mounts, err := s.imageMounts(context.Background(), cfg)
	if err != nil || len(mounts) != 0 {
		t.Fatalf("got %v, %v", mounts, err)
	}
	if got, err := withImageMounts(cfg, nil); err != nil || got != cfg {
		t.Fatalf("got %v, %v", got, err)
	}
}

// An image mount becomes a read-only bind of its mounted image, or of the
// sub path in it; the config the kubelet sent is left as it is.
func TestWithImageMounts(t *testing.T) {
	imgs := &fakeImages{imgs: map[string]*images.Image{"busybox": {ID: "sha256:abc"}}}
	s := New(Options{Config: config.Default(), Images: imgs, StateDir: t.TempDir(), Pods: memPods{}})
	cfg := &runtime.ContainerConfig{Mounts: []*runtime.Mount{{ContainerPath: "/h", HostPath: "/tmp"},
		{ContainerPath: "/bin", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}, ImageSubPath: "bin", SelinuxRelabel: true}}}
	mounts, err := s.imageMounts(context.Background(), cfg)
	if err != nil || len(mounts) != 1 || mounts[0].Index != 1 || mounts[0].ImageID != "sha256:abc" || mounts[0].Image != "busybox" {
		t.Fatalf("got %+v, %v", mounts, err)
	}
	target := t.TempDir()
	if err := os.Mkdir(filepath.Join(target, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := withImageMounts(cfg, map[int]string{1: target})
	if err != nil {
		t.Fatal(err)
	}
	if m := got.Mounts[1]; m.Image != nil || m.ImageSubPath != "" || m.SelinuxRelabel || m.HostPath != filepath.Join(target, "bin") {
		t.Fatalf("mount %v", m)
	}
	if cfg.Mounts[1].Image == nil {
		t.Fatal("the kubelet's config was changed")
	}
}
