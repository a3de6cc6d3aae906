package container

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const stateDir = "/state"

// harness is a Service over fakes, with a real store in a temp dir.
type harness struct {
	t     *testing.T
	svc   *Service
	os    *fakeOS
	snaps *fakeSnapshots
	run   *fakeRunner
	store *Store
	dir   string // the store's
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	st, err := NewStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, os: newFakeOS(t), snaps: newFakeSnapshots(), run: newFakeRunner(), store: st, dir: dir}
	h.svc = NewService(Options{Store: st, Runner: h.run, Snapshots: h.snaps, OS: h.os, StateDir: stateDir})
	t.Cleanup(func() { // before the store's dir goes
		h.svc.Close()
		h.svc.watchers.Wait()
	})
	return h
}

var testPod = Pod{ID: "pod1", CgroupParent: "/kubepods/pod1", LogDirectory: "/var/log/pods/p1"}

// input is a create of container id in testPod with two image mounts: one
// of a one-layer image (it gets the empty lower dir), one of two layers.
func (h *harness) input(id string, got *BuildInput) CreateInput {
	h.snaps.layers["sha256:one"] = 1
	return CreateInput{
		Pod:    testPod,
		Record: Container{ID: id, PodID: testPod.ID, Name: "app", ImageID: "sha256:img"},
		ImageMounts: []ImageMount{{Index: 1, Image: "one", ImageID: "sha256:one", ContainerPath: "/one"},
			{Index: 2, Image: "two", ImageID: "sha256:two", ContainerPath: "/two"}},
		LogPath: "app/0.log", SharedPID: true, Stdin: true,
		Build: func(b BuildInput) (*specs.Spec, error) {
			if got != nil {
				*got = b
			}
			return &specs.Spec{Process: &specs.Process{User: specs.User{UID: 1000, GID: 100, AdditionalGids: []uint32{10, 100}}}}, nil
		},
	}
}

// assertNothingLeft checks that container id left nothing: no dir, mount,
// snapshot, shim container or record.
func (h *harness) assertNothingLeft(id string) {
	h.t.Helper()
	if dirs, mounts := h.os.left(stateDir + "/containers/" + id); len(dirs)+len(mounts) > 0 {
		h.t.Errorf("left dirs %v, mounts %v", dirs, mounts)
	}
	if keys, _ := h.snaps.Keys(); len(keys) > 0 {
		h.t.Errorf("left snapshots %v", keys)
	}
	if h.run.holds(testPod.ID, id) {
		h.t.Error("left the container in the shim")
	}
	if _, err := h.store.Get(id); !errdefs.IsNotFound(err) {
		h.t.Errorf("left a record: %v", err)
	}
}

func TestCreate(t *testing.T) {
	h := newHarness(t)
	var b BuildInput
	c, err := h.svc.Create(context.Background(), h.input("c1", &b))
	if err != nil {
		t.Fatal(err)
	}
	if c.State != Created || c.LogPath != "/var/log/pods/p1/app/0.log" ||
		c.User == nil || !slices.Equal(c.User.Groups, []uint32{10, 100}) {
		t.Fatalf("record %+v", c)
	}
	dir := stateDir + "/containers/c1"
	if b.Rootfs != dir+"/rootfs" || b.Dir != dir || b.PIDNamespace != "/proc/42/ns/pid" ||
		b.ImageMounts[1] != dir+"/image-mounts/1" || b.ImageMounts[2] != dir+"/image-mounts/2" {
		t.Fatalf("build input %+v", b)
	}
	_, mounts := h.os.left(dir)
	if !slices.Equal(mounts, []string{dir + "/image-mounts/1", dir + "/image-mounts/2", dir + "/rootfs"}) {
		t.Fatalf("mounts %v", mounts)
	}
	if opts := h.os.mounts[dir+"/image-mounts/1"]; !strings.Contains(opts, dir+"/image-mounts/.empty") {
		t.Errorf("a one-layer image mount without the empty lower dir: %s", opts)
	}
	for _, key := range []string{"c1", "c1.image1", "c1.image2"} {
		if !h.snaps.has(key) {
			t.Errorf("no snapshot %s", key)
		}
	}
	sh := h.run.shims[testPod.ID]
	if ctr := sh.ctrs["c1"]; ctr == nil || ctr.io.LogPath != c.LogPath || !ctr.io.Stdin || sh.pauses != 1 {
		t.Fatalf("shim %+v", sh)
	}
	if !h.os.dirs["/var/log/pods/p1/app"] {
		t.Error("the log's dir was not made")
	}
	h.svc.watchMu.Lock()
	watching := h.svc.watching[testPod.ID]
	h.svc.watchMu.Unlock()
	if !watching {
		t.Error("the pod's exits are not watched")
	}
}

// In a pod with its own user namespace, the rootfs and image mounts are
// idmapped into it, the upper dir given to the pod's root.
func TestCreateInUserNamespace(t *testing.T) {
	h := newHarness(t)
	in := h.input("c1", nil)
	in.Pod.UserNS, in.Pod.RootUID, in.Pod.RootGID = "/run/berth/userns/pod1", 100000, 100000
	if _, err := h.svc.Create(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	for target, what := range h.os.mounts {
		if !strings.HasPrefix(what, "mapped /run/berth/userns/pod1 100000:100000") {
			t.Errorf("%s: %s", target, what)
		}
	}
}

// A failure at any step of Create leaves nothing: no dir, mount, snapshot,
// shim container or record, and returns the step's error.
func TestCreateFailureLeavesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inject func(h *harness, in *CreateInput)
		is     func(error) bool
	}{
		{"log path", func(h *harness, in *CreateInput) { in.LogPath = "../x.log" }, errdefs.IsInvalidArgument},
		{"dir", func(h *harness, in *CreateInput) { h.os.inject("mkdir", "/containers/c1") }, nil},
		{"snapshot", func(h *harness, in *CreateInput) { h.snaps.inject("prepare", "c1") }, nil},
		{"rootfs mount", func(h *harness, in *CreateInput) { h.os.inject("mount", "/rootfs") }, nil},
		{"image snapshot", func(h *harness, in *CreateInput) { h.snaps.inject("prepare", "c1.image2") }, nil},
		{"empty lower dir", func(h *harness, in *CreateInput) { h.os.inject("mkdir", ".empty") }, nil},
		{"image mount", func(h *harness, in *CreateInput) { h.os.inject("mount", "image-mounts/2") }, nil},
		{"shim", func(h *harness, in *CreateInput) { h.run.inject("get", "") }, nil},
		{"pause", func(h *harness, in *CreateInput) { h.run.inject("pause", "") }, nil},
		{"build", func(h *harness, in *CreateInput) {
			in.Build = func(BuildInput) (*specs.Spec, error) { return nil, errInjected }
		}, nil},
		{"log dir", func(h *harness, in *CreateInput) { h.os.inject("mkdir", "/var/log/pods") }, nil},
		{"shim create", func(h *harness, in *CreateInput) { h.run.inject("create", "c1") }, nil},
		{"shim create, answer lost", func(h *harness, in *CreateInput) { h.run.createLost = true }, nil},
		{"record", func(h *harness, in *CreateInput) { h.removeStoreDir() }, func(err error) bool { return err != nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			in := h.input("c1", nil)
			tc.inject(h, &in)
			_, err := h.svc.Create(context.Background(), in)
			is := tc.is
			if is == nil {
				is = func(err error) bool { return errors.Is(err, errInjected) }
			}
			if !is(err) {
				t.Fatalf("err = %v", err)
			}
			h.assertNothingLeft("c1")
		})
	}
}

// A rollback whose unmount fails keeps what is under the mount (its
// snapshot, the dir) for RemoveContainer or recovery, and still deletes the
// container from the shim.
func TestCreateRollbackKeepsWhatAStuckMountHolds(t *testing.T) {
	h := newHarness(t)
	in := h.input("c1", nil)
	in.Build = func(BuildInput) (*specs.Spec, error) { return nil, errInjected }
	h.os.inject("unmount", "image-mounts/1")
	if _, err := h.svc.Create(context.Background(), in); !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	dir := stateDir + "/containers/c1"
	_, mounts := h.os.left(dir)
	if !slices.Equal(mounts, []string{dir + "/image-mounts/1", dir + "/rootfs"}) {
		t.Fatalf("mounts %v", mounts)
	}
	for key, want := range map[string]bool{"c1": true, "c1.image1": true, "c1.image2": false} {
		if h.snaps.has(key) != want {
			t.Errorf("snapshot %s kept: %v, want %v", key, !want, want)
		}
	}
	if _, err := h.store.Get("c1"); !errdefs.IsNotFound(err) {
		t.Errorf("record: %v", err)
	}
}

// A failed create's rollback runs on a context of its own: the request's,
// cancelled, is often why it rolls back (the fakes refuse a done context).
func TestCreateRollbackOutlivesTheRequest(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	in := h.input("c1", nil)
	build := in.Build
	in.Build = func(b BuildInput) (*specs.Spec, error) { cancel(); return build(b) } // the shim makes it all the same
	if _, err := h.svc.Create(ctx, in); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	h.assertNothingLeft("c1")
}

func TestLogPath(t *testing.T) {
	for _, tc := range []struct {
		podDir, logPath, want string
		bad                   bool
	}{
		{"/var/log/pods/x", "c/0.log", "/var/log/pods/x/c/0.log", false},
		{"/var/log/pods/x/", "c_0.log", "/var/log/pods/x/c_0.log", false},
		{"/var/log/pods/x", "../y/0.log", "", true},
		{"/var/log/pods/x", "/../../etc/passwd", "", true},
		{"/var/log/pods/x", "..", "", true},
		{"", "c/0.log", "/run/ctr/container.log", false},
		{"/var/log/pods/x", "", "/run/ctr/container.log", false},
	} {
		got, err := logPath("/run/ctr", tc.podDir, tc.logPath)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("logPath(%q, %q) = %q, %v", tc.podDir, tc.logPath, got, err)
		}
	}
}

func TestSnapshotOwner(t *testing.T) {
	for key, want := range map[string]string{"abc": "abc", imageMountKey("abc", 3): "abc"} {
		if got := snapshotOwner(key); got != want {
			t.Errorf("snapshotOwner(%q) = %q, want %q", key, got, want)
		}
	}
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// removeStoreDir makes every record write fail from now on.
func (h *harness) removeStoreDir() {
	h.t.Helper()
	if err := os.RemoveAll(h.dir); err != nil {
		h.t.Fatal(err)
	}
}
