package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/images/remote"
)

// fakeImages is an in-memory ImageStore.
type fakeImages struct {
	imgs    map[string]*images.Image // by every name and ID
	pinned  map[string]bool
	removed []string
	err     error
}

func (f *fakeImages) Get(_ context.Context, ref string) (*images.Image, error) {
	if f.err != nil {
		return nil, f.err
	}
	if img, ok := f.imgs[ref]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
}

func (f *fakeImages) List(context.Context) ([]*images.Image, error) {
	seen := map[string]bool{}
	var out []*images.Image
	for _, img := range f.imgs {
		if !seen[img.ID] {
			seen[img.ID] = true
			out = append(out, img)
		}
	}
	return out, f.err
}

func (f *fakeImages) Remove(_ context.Context, ref string) error {
	f.removed = append(f.removed, ref)
	return f.err
}

func (f *fakeImages) Pinned(img *images.Image) bool { return f.pinned[img.ID] }
func (f *fakeImages) Inspect(img *images.Image) ([]byte, []byte, error) {
	return []byte(`{"schemaVersion":2}`), []byte(`{"architecture":"amd64"}`), nil
}
func (f *fakeImages) Usage() (int64, int64, error)          { return 1000, 10, nil }
func (f *fakeImages) SnapshotsUsage() (int64, int64, error) { return 200, 2, nil }
func (f *fakeImages) Root() string                          { return "/var/lib/berth/images" }
func (f *fakeImages) SnapshotsDir() string                  { return "/var/lib/berth/images/snapshots" }

func newImageServer(imgs ...*images.Image) (*Server, *fakeImages) {
	f := &fakeImages{imgs: map[string]*images.Image{}, pinned: map[string]bool{}}
	for _, img := range imgs {
		f.imgs[img.ID] = img
		for _, n := range append(img.RepoTags, img.RepoDigests...) {
			f.imgs[n] = img
		}
	}
	return New(Options{Config: config.Default(), Network: fakeNetwork{}, Images: f}), f
}

func testImage(id, user string, tags ...string) *images.Image {
	img := &images.Image{ID: "sha256:" + id, RepoTags: tags, Size: 4096}
	img.Config.User = user
	return img
}

func TestImageUser(t *testing.T) {
	tests := []struct {
		user     string
		uid      int64
		hasUID   bool
		username string
	}{
		{"", 0, false, ""},
		{"1002", 1002, true, ""},
		{"www-data", 0, false, "www-data"},
		{"1003:users", 1003, true, ""},
		{"www-data:users", 0, false, "www-data"},
		{"0", 0, true, ""},
	}
	for _, tt := range tests {
		uid, name := imageUser(tt.user)
		if (uid != nil) != tt.hasUID || (uid != nil && uid.Value != tt.uid) || name != tt.username {
			t.Errorf("imageUser(%q) = %v, %q", tt.user, uid, name)
		}
	}
}

func TestImageStatus(t *testing.T) {
	s, f := newImageServer(testImage("aa", "1002", "docker.io/library/a:1"))
	f.pinned["sha256:aa"] = true
	resp, err := s.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "docker.io/library/a:1"}, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	img := resp.Image
	if img.Id != "sha256:aa" || img.Size != 4096 || img.Uid.GetValue() != 1002 || !img.Pinned || img.Spec.Image != "sha256:aa" {
		t.Fatalf("Image = %v", img)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(resp.Info["info"]), &info); err != nil || info["manifest"] == nil || info["config"] == nil {
		t.Fatalf("verbose info = %q, %v", resp.Info["info"], err)
	}

	missing, err := s.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{Image: "nope"}})
	if err != nil || missing.Image != nil {
		t.Fatalf("missing image: %v, %v; want an empty answer", missing, err)
	}
	_, err = s.ImageStatus(context.Background(), &runtime.ImageStatusRequest{Image: &runtime.ImageSpec{}})
	if status.Code(toGRPC(err)) != codes.InvalidArgument {
		t.Fatalf("empty ref: %v, want InvalidArgument", err)
	}
}

func TestListImages(t *testing.T) {
	s, _ := newImageServer(testImage("aa", "", "docker.io/library/a:1"), testImage("bb", "", "docker.io/library/b:1"))
	all, err := s.ListImages(context.Background(), &runtime.ListImagesRequest{})
	if err != nil || len(all.Images) != 2 {
		t.Fatalf("ListImages = %v, %v", all, err)
	}
	one, err := s.ListImages(context.Background(), &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "docker.io/library/b:1"}}})
	if err != nil || len(one.Images) != 1 || one.Images[0].Id != "sha256:bb" {
		t.Fatalf("filtered ListImages = %v, %v", one, err)
	}
	none, err := s.ListImages(context.Background(), &runtime.ListImagesRequest{Filter: &runtime.ImageFilter{Image: &runtime.ImageSpec{Image: "docker.io/library/c:1"}}})
	if err != nil || len(none.Images) != 0 {
		t.Fatalf("filter on a missing image = %v, %v", none, err)
	}
}

func TestRemoveImage(t *testing.T) {
	s, f := newImageServer()
	if _, err := s.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	if len(f.removed) != 1 || f.removed[0] != "busybox" {
		t.Fatalf("removed = %v", f.removed)
	}
	f.err = fmt.Errorf("pinned: %w", errdefs.ErrFailedPrecondition)
	_, err := s.RemoveImage(context.Background(), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: "busybox"}})
	if status.Code(toGRPC(err)) != codes.FailedPrecondition {
		t.Fatalf("err = %v", err)
	}
}

func TestImageFsInfo(t *testing.T) {
	s, _ := newImageServer()
	resp, err := s.ImageFsInfo(context.Background(), &runtime.ImageFsInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	img, ctr := resp.ImageFilesystems[0], resp.ContainerFilesystems[0]
	if img.FsId.Mountpoint != "/var/lib/berth/images" || img.UsedBytes.Value != 1000 || img.InodesUsed.Value != 10 || img.Timestamp == 0 {
		t.Fatalf("image fs = %v", img)
	}
	if ctr.FsId.Mountpoint != "/var/lib/berth/images/snapshots" || ctr.UsedBytes.Value != 200 {
		t.Fatalf("container fs = %v", ctr)
	}
}

type fakePuller struct {
	ref  string
	auth remote.Auth
	err  error
}

func (f *fakePuller) Pull(_ context.Context, ref string, auth remote.Auth) (*images.Image, error) {
	f.ref, f.auth = ref, auth
	if f.err != nil {
		return nil, f.err
	}
	return &images.Image{ID: "sha256:aa"}, nil
}

func TestPullImage(t *testing.T) {
	p := &fakePuller{}
	s := New(Options{Config: config.Default(), Network: fakeNetwork{}, Puller: p})
	resp, err := s.PullImage(context.Background(), &runtime.PullImageRequest{
		Image: &runtime.ImageSpec{Image: "busybox"},
		Auth:  &runtime.AuthConfig{Username: "u", Password: "p", RegistryToken: "t"},
	})
	if err != nil || resp.ImageRef != "sha256:aa" {
		t.Fatalf("PullImage = %v, %v", resp, err)
	}
	if p.ref != "busybox" || p.auth != (remote.Auth{Username: "u", Password: "p", RegistryToken: "t"}) {
		t.Fatalf("puller got %q %+v", p.ref, p.auth)
	}
	if _, err := s.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{}}); status.Code(toGRPC(err)) != codes.InvalidArgument {
		t.Fatalf("empty ref: %v", err)
	}
	p.ref = ""
	_, err = s.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox", RuntimeHandler: "kata"}})
	if status.Code(toGRPC(err)) != codes.InvalidArgument || !strings.Contains(err.Error(), "runtime_handler") || p.ref != "" {
		t.Fatalf("a pull for an unknown runtime handler: %v (puller got %q)", err, p.ref)
	}
	s.config.RuntimeHandlers = map[string]config.RuntimeHandler{"test-handler": {}}
	if _, err := s.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "busybox", RuntimeHandler: "test-handler"}}); err != nil || p.ref != "busybox" {
		t.Fatalf("a pull for a configured runtime handler: %v (puller got %q)", err, p.ref)
	}
	p.err = fmt.Errorf("pull x: registry unreachable: connection refused: %w", errdefs.ErrUnavailable)
	_, err = s.PullImage(context.Background(), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "x"}})
	st, _ := status.FromError(toGRPC(err))
	// The kubelet recognises an unreachable registry by this message prefix on an Unknown code.
	if st.Code() != codes.Unknown || !strings.HasPrefix(st.Message(), "RegistryUnavailable") {
		t.Fatalf("unreachable registry: %v", st)
	}
}
