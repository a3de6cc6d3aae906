package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// canaryDir is where the hostile test images (hack/testimages/hostile.go)
// point: a fixed host path, since it is baked into their layers.
const canaryDir = "/tmp/berth-canary"

// canaryTime is every canary's mtime and atime.
var canaryTime = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

// canary is all that an escape could change of a host file: its inode's
// metadata (ctime included, which every metadata change moves), xattrs,
// content, and a dir's entries.
type canary struct {
	Mode, UID, GID, Nlink uint32
	Ino                   uint64
	Size                  int64
	Mtime, Ctime          unix.Timespec
	Xattrs                map[string]string
	Content               string
	Entries               []string
}

// makeCanaries makes canaryDir afresh, owned by root: the files chmod, chown,
// xattr (targets of the hostile layers), passwd and group (naming the user
// "hostile" as 4242), and the dir "dir"; each 0600 (dirs 0700), with a known
// mtime and the xattr user.berth-canary. They are removed when the test ends.
func makeCanaries(t *testing.T) map[string]canary {
	t.Helper()
	if err := os.RemoveAll(canaryDir); err != nil { // a killed run's: ours
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(canaryDir) })
	files := map[string]string{"chmod": "canary\n", "chown": "canary\n", "xattr": "canary\n",
		"passwd": "root:x:0:0:root:/root:/bin/sh\nhostile:x:4242:4242::/:/bin/sh\n", "group": "root:x:0:\nhostile:x:4242:\n"}
	if err := os.MkdirAll(filepath.Join(canaryDir, "dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(canaryDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out := map[string]canary{}
	for _, name := range append([]string{"dir", "."}, keys(files)...) {
		p := filepath.Join(canaryDir, name)
		if err := unix.Lsetxattr(p, "user.berth-canary", []byte("original"), 0); err != nil {
			t.Fatalf("xattr on %s (the host's /tmp, and the VMs' scratch disk there, must take user xattrs): %v", p, err)
		}
		if err := os.Chtimes(p, canaryTime, canaryTime); err != nil {
			t.Fatal(err)
		}
		out[name] = readCanary(t, p)
	}
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func readCanary(t *testing.T, p string) canary {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	c := canary{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Nlink: uint32(st.Nlink), Ino: st.Ino, Size: st.Size,
		Mtime: st.Mtim, Ctime: st.Ctim, Xattrs: map[string]string{}}
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		val := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			t.Fatal(err)
		}
		c.Xattrs[name] = string(val[:m])
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		c.Entries = dirNames(t, p)
	} else {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		c.Content = string(data)
	}
	return c
}

// checkCanaries reports every canary that differs from before.
func checkCanaries(t *testing.T, before map[string]canary) {
	t.Helper()
	for name, want := range before {
		if got := readCanary(t, filepath.Join(canaryDir, name)); !reflect.DeepEqual(got, want) {
			t.Errorf("host canary %s changed (mode %#o, was %#o):\n got  %+v\n want %+v",
				filepath.Join(canaryDir, name), got.Mode, want.Mode, got, want)
		}
	}
}

// Pulling layers that try to reach host files — a hard link to a symlink to
// one, with setuid mode, another owner, old times or xattrs; a symlinked
// parent dir, absolute or by "../" — leaves those files exactly as they were.
// A pull may refuse such a layer or apply it inside its root; either is fine.
func TestHostileLayersLeaveHostAlone(t *testing.T) {
	bin := util.RequireIntegration(t)
	reg := testRegistry(t)
	b := util.NewBerthd(t, mirrorConfig(reg))
	b.Start(t, bin)
	_, ic := b.Clients(t)
	before := makeCanaries(t)
	for _, repo := range []string{"hostile-chmod:1", "hostile-chown:1", "hostile-xattr:1", "hostile-parent:1"} {
		ref := reg + "/berth-test/" + repo
		if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: ref}}); err != nil {
			t.Logf("pull %s: %v", repo, err)
		}
	}
	checkCanaries(t, before)
}

// hostileCreate creates a container of image in pod, as user "hostile" (the
// image's USER) or, with uid set, as that numeric user.
func hostileCreate(t *testing.T, rc runtime.RuntimeServiceClient, pod string, podCfg *runtime.PodSandboxConfig,
	image string, uid *runtime.Int64Value) (string, error) {
	t.Helper()
	cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "hostile"},
		Image: &runtime.ImageSpec{Image: image}, Command: []string{"sleep", "100000"},
		Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{RunAsUser: uid}}}
	resp, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg})
	if err != nil {
		return "", err
	}
	return resp.ContainerId, nil
}

// assertNoContainer checks that a failed CreateContainer left nothing: no
// record, no rootfs mount or dir, no snapshot.
func assertNoContainer(t *testing.T, b *util.Berthd, rc runtime.RuntimeServiceClient) {
	t.Helper()
	list, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Containers) != 0 {
		t.Errorf("a failed create left records: %v", list.Containers)
	}
	if m := util.MountsUnder(filepath.Join(b.State, "containers")); len(m) != 0 {
		t.Errorf("a failed create left mounts: %v", m)
	}
	if d := dirNames(t, filepath.Join(b.State, "containers")); len(d) != 0 {
		t.Errorf("a failed create left container dirs: %v", d)
	}
	if d := dirNames(t, filepath.Join(b.Root, "images", "snapshots")); len(d) != 0 {
		t.Errorf("a failed create left snapshots: %v", d)
	}
}

// removeContainer removes a container a subtest made.
func removeContainer(t *testing.T, rc runtime.RuntimeServiceClient, id string) {
	t.Helper()
	if _, err := rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
}

// An image's /etc/passwd or /etc/group that is not a regular file — a FIFO,
// which blocked CreateContainer (and berthd's graceful stop) forever; a
// device, which berthd read from the host — makes CreateContainer fail at
// once with InvalidArgument, whatever the user: a numeric one needs the
// files too (its primary group, its supplementary groups). The failure leaves
// nothing, so a retry fails the same way. A symlink to a host path resolves
// inside the rootfs, as the container would see it: never to the host's
// file. Last, berthd still stops gracefully.
func TestHostileUserFiles(t *testing.T) {
	bin := util.RequireIntegration(t)
	b := util.NewBerthd(t, mirrorConfig(testRegistry(t)))
	b.Start(t, bin)
	// Should a regression read /dev/zero again, the OOM killer takes berthd first.
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", b.Pid()), []byte("1000"), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, _ := b.Clients(t)
	before := makeCanaries(t)
	podCfg := podConfig("hostile")
	pod := runPod(t, rc, podCfg)
	for _, c := range []struct{ repo, reason string }{
		{"fifo-passwd:1", "image file /etc/passwd is a FIFO, not a regular file"},
		{"devzero-passwd:1", "image file /etc/group is a character device, not a regular file"},
		{"symlink-passwd:1", `user "hostile" is not in the image's /etc/passwd`},
	} {
		t.Run(c.repo, func(t *testing.T) {
			image := pullTestImage(t, b, "berth-test/"+c.repo)
			for _, uid := range []*runtime.Int64Value{nil, {Value: 1000}} {
				if uid != nil && c.repo == "symlink-passwd:1" {
					continue // below: works
				}
				for try := range 2 {
					_, err := hostileCreate(t, rc, pod, podCfg, image, uid)
					if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.reason) {
						t.Fatalf("create as %v, try %d: %v; want InvalidArgument: %s", uid, try+1, err, c.reason)
					}
					assertNoContainer(t, b, rc)
				}
			}
		})
	}
	t.Run("symlink-passwd numeric", func(t *testing.T) {
		id, err := hostileCreate(t, rc, pod, podCfg, pullTestImage(t, b, "berth-test/symlink-passwd:1"), &runtime.Int64Value{Value: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if u := containerStatus(t, rc, id).GetUser().GetLinux(); u.GetUid() != 1000 || u.GetGid() != 0 {
			t.Errorf("user %v, want uid 1000 gid 0 (no passwd entry in the image)", u)
		}
		removeContainer(t, rc, id)
	})
	t.Run("symlink-in-passwd", func(t *testing.T) {
		id, err := hostileCreate(t, rc, pod, podCfg, pullTestImage(t, b, "berth-test/symlink-in-passwd:1"), nil)
		if err != nil {
			t.Fatal(err)
		}
		u := containerStatus(t, rc, id).GetUser().GetLinux()
		if got := fmt.Sprint(u.GetUid(), u.GetGid(), u.GetSupplementalGroups()); got != "4343 4343 [4343 5555]" {
			t.Errorf("user %s, want 4343 4343 [4343 5555]: the image's own files, through its symlinks", got)
		}
		removeContainer(t, rc, id)
	})
	checkCanaries(t, before)
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if code := b.Signal(t, syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\n%s", code, b.Log())
	}
}
