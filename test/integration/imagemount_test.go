package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// imageMountsLeft are the image mounts (KEP-4639) left under berthd's dirs.
func imageMountsLeft(b *util.Berthd) []string {
	var out []string
	for _, m := range util.MountsUnder(b.Dir) {
		if strings.Contains(m, "/image-mounts/") {
			out = append(out, m)
		}
	}
	return out
}

// An image mount (a CRI Mount with image set) shows a pulled image's files
// read-only, not noexec, whole or from a sub path resolved inside the image;
// ContainerStatus names the image's ID; removing the image while the
// container exists leaves its files, also across a restart of berthd; the
// mounts go with the container. Sub
// paths that are missing or climb out of the image through a symlink, and
// writable image mounts, are refused and leave nothing mounted.
func TestImageMount(t *testing.T) {
	b, bin, rc := containerBerthd(t)
	_, ic := b.Clients(t)
	ref := testRegistry(t) + "/berth-test/imagemount:1"
	pulled, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}})
	if err != nil {
		t.Fatal(err)
	}
	podCfg := podConfig("imagemount")
	pod := runPod(t, rc, podCfg)
	imageMount := func(path, image, sub string) *runtime.Mount {
		return &runtime.Mount{ContainerPath: path, Readonly: true, Image: &runtime.ImageSpec{Image: image}, ImageSubPath: sub}
	}
	id := startContainer(t, rc, pod, podCfg, "reader", func(c *runtime.ContainerConfig) {
		c.Mounts = []*runtime.Mount{imageMount("/img", ref, ""), imageMount("/sub", ref, "data/self"),
			imageMount("/file", ref, "abs/hello"), imageMount("/bb", busyboxImage, "")}
	}, "sleep", "100000")
	r := execSync(t, rc, id, "sh", "-c", "cat /img/data/hello /sub/hello /file; /bb/bin/ls /bb/etc/berth-test-image")
	if got := string(r.Stdout); got != strings.Repeat("hello from an image\n", 3)+"/bb/etc/berth-test-image\n" {
		t.Errorf("image mounts read %q %q", got, r.Stderr)
	}
	for _, p := range []string{"/img/new", "/sub/hello", "/bb/etc/new"} {
		if r := execSync(t, rc, id, "touch", p); r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "Read-only") {
			t.Errorf("touch %s: %d %q, want a read-only file system", p, r.ExitCode, r.Stderr)
		}
	}
	mounts := map[string]*runtime.Mount{}
	for _, m := range containerStatus(t, rc, id).Mounts {
		mounts[m.ContainerPath] = m
	}
	if m := mounts["/img"]; m.GetImage().GetImage() != ref || m.GetImage().GetImageRef() != pulled.ImageRef {
		t.Errorf("status of /img: %v, want image %s ref %s", m, ref, pulled.ImageRef)
	}
	if m := mounts["/sub"]; m.GetImageSubPath() != "data/self" || !m.GetReadonly() {
		t.Errorf("status of /sub: %v", m)
	}
	// RemoveImage while the container exists: its files stay.
	if _, err := ic.RemoveImage(ctxT(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	// A restart keeps the mounts and their snapshots (which hold the layers
	// of the removed image), as they belong to a recorded container.
	b.Kill(t)
	b.Start(t, bin)
	rc, ic = b.Clients(t)
	if r := execSync(t, rc, id, "cat", "/img/data/hello"); string(r.Stdout) != "hello from an image\n" {
		t.Errorf("after RemoveImage and a restart: %q %q", r.Stdout, r.Stderr)
	}
	for n := range 4 {
		if _, err := os.Stat(filepath.Join(b.Root, "images", "snapshots", id+".image"+strconv.Itoa(n))); err != nil {
			t.Errorf("image mount %d's snapshot after a restart: %v", n, err)
		}
	}
	if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
		t.Fatal(err)
	}
	refused := map[string]*runtime.Mount{
		"escape":   imageMount("/m", ref, "data/out"),
		"dotdot":   imageMount("/m", ref, "data/../data"),
		"missing":  imageMount("/m", ref, "none"),
		"writable": {ContainerPath: "/m", Image: &runtime.ImageSpec{Image: ref}},
	}
	for name, m := range refused {
		cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: busyboxImage},
			Command: []string{"sleep", "100000"}, Mounts: []*runtime.Mount{m}}
		_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if left := imageMountsLeft(b); len(left) != 4 {
		t.Errorf("image mounts after the refused creates: %v, want the 4 of the reader", left)
	}
	if _, err := rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if left := imageMountsLeft(b); len(left) > 0 {
		t.Errorf("image mounts left after RemoveContainer: %v", left)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
