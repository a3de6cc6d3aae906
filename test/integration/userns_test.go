package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// usernsHostID is where the test pods' IDs start on the host.
const usernsHostID = 400000

func usernsPodConfig(name string) *runtime.PodSandboxConfig {
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: usernsHostID, Length: 65536}}
	cfg := podConfig(name)
	cfg.Linux = &runtime.LinuxPodSandboxConfig{
		Sysctls: map[string]string{"net.ipv4.ip_unprivileged_port_start": "1024"},
		SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{
			Pid:           runtime.NamespaceMode_POD,
			UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping},
		}},
	}
	return cfg
}

// A pod with its own user namespace, checked from inside and from the host:
// its root is an unprivileged host ID; its network namespace belongs to it
// (its root binds a privileged port); the image's files are its root's and
// what it writes is stored with its host IDs; a volume with the pod's
// mappings is idmapped, and so are image mounts; its containers share a PID namespace whose init (the
// pause) is the pod's root too, as is the root of its IPC namespace's
// /dev/mqueue (which SELinux hosts label); privileged containers are
// refused; nothing is left after removal.
func TestUserNamespaces(t *testing.T) {
	b, bin, rc := containerBerthd(t)
	st, err := rc.Status(ctxT(t), &runtime.StatusRequest{})
	if err != nil || !st.GetRuntimeHandlers()[0].GetFeatures().GetUserNamespaces() {
		t.Fatalf("Status does not advertise user namespaces: %v, %v", st.GetRuntimeHandlers(), err)
	}
	podCfg := usernsPodConfig("userns")
	pod := runPod(t, rc, podCfg)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "host-file"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := podCfg.Linux.SecurityContext.NamespaceOptions
	withVolume := func(c *runtime.ContainerConfig) {
		mapping := ns.UsernsOptions.Uids
		// Relabelled where SELinux runs (hack/test-vm-selinux.sh), so that
		// the pod may write there.
		c.Mounts = []*runtime.Mount{{HostPath: vol, ContainerPath: "/vol", UidMappings: mapping, GidMappings: mapping,
			SelinuxRelabel: true}}
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: ns}}
	}
	id := startContainer(t, rc, pod, podCfg, "main", withVolume, "sleep", "100000")

	want := map[string]string{
		"cat /proc/self/uid_map /proc/self/gid_map": "0 400000 65536\n0 400000 65536",
		"id -u; id -g": "0\n0",
		"stat -c %u:%g /bin/busybox /vol/host-file":                                    "0:0\n0:0",
		"stat -c %u:%g /dev/mqueue":                                                    "0:0",
		"echo hi > /written; echo hi > /vol/written; stat -c %u /written /vol/written": "0\n0",
		"tr '\\0' ' ' < /proc/1/cmdline":                                               "pause",
	}
	for cmd, out := range want {
		r := execSync(t, rc, id, "sh", "-c", cmd)
		if got := strings.Join(strings.Fields(string(r.Stdout)), " "); !strings.Contains(got, strings.Join(strings.Fields(out), " ")) {
			t.Errorf("%s: %q (stderr %q), want %q", cmd, r.Stdout, r.Stderr, out)
		}
	}
	r := execSync(t, rc, id, "sh", "-c", "nc -l -p 80 & sleep 0.5; cat /proc/net/tcp /proc/net/tcp6; kill $!")
	if !regexp.MustCompile(`:0050 0+:0000 0A`).Match(r.Stdout) {
		t.Errorf("the pod's root could not listen on port 80 in its network namespace: %s %s", r.Stdout, r.Stderr)
	}
	hostOwner := func(path string) uint32 {
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		return st.Uid
	}
	if uid := hostOwner(filepath.Join(b.State, "containers", id, "rootfs", "written")); uid != usernsHostID {
		t.Errorf("a file the pod's root wrote is owned by host uid %d, want %d", uid, usernsHostID)
	}
	if uid := hostOwner(filepath.Join(vol, "written")); uid != 0 {
		t.Errorf("a file the pod's root wrote in an idmapped volume is owned by host uid %d, want 0", uid)
	}
	shims := util.ShimPids(b.Dir)
	if len(shims) != 1 {
		t.Fatalf("shims: %v", shims)
	}
	pauses := util.PauseChildren(shims[0])
	if len(pauses) != 1 || hostOwner("/proc/"+strconv.Itoa(pauses[0])) != usernsHostID {
		t.Errorf("pause processes %v: want one, run by the pod's root", pauses)
	}

	ownPID := func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER, UsernsOptions: ns.UsernsOptions}}}
	}
	own := startContainer(t, rc, pod, podCfg, "own-pid", ownPID, "sleep", "100000")
	r = execSync(t, rc, own, "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/self/uid_map")
	if f := strings.Fields(string(r.Stdout)); strings.Join(f, " ") != "sleep 100000 0 400000 65536" {
		t.Errorf("a container with a PID namespace of its own: %q %q", r.Stdout, r.Stderr)
	}

	// A berthd restart finds the pod whole: its pins (the user namespace's
	// too) are there, its containers run and exec in its namespaces.
	b.Kill(t)
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	if ps, err := rc.PodSandboxStatus(ctxT(t), &runtime.PodSandboxStatusRequest{PodSandboxId: pod}); err != nil ||
		ps.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after a berthd restart: %v, %v", ps.GetStatus().GetState(), err)
	}
	if r := execSync(t, rc, id, "cat", "/proc/self/uid_map"); strings.Join(strings.Fields(string(r.Stdout)), " ") != "0 400000 65536" {
		t.Errorf("exec after a berthd restart: %q %q", r.Stdout, r.Stderr)
	}

	// An image VOLUME is the pod's root's too, and writable (labelled where
	// SELinux runs).
	volImage := pullTestImage(t, b, "berth-test/volume:1")
	volCtr := startContainer(t, rc, pod, podCfg, "image-volume", func(c *runtime.ContainerConfig) {
		c.Image.Image = volImage
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: ns}}
	}, "sleep", "100000")
	if r := execSync(t, rc, volCtr, "sh", "-c", "echo hi > /data/f && cat /data/f; stat -c %u:%g /data"); strings.Join(strings.Fields(string(r.Stdout)), " ") != "hi 0:0" {
		t.Errorf("image volume in a user-namespaced pod: %q %q", r.Stdout, r.Stderr)
	}

	// An image mount is idmapped as the rootfs is: the image's root files
	// are the pod's root's (unmapped, they would show as the overflow ID).
	imgCtr := startContainer(t, rc, pod, podCfg, "image-mount", func(c *runtime.ContainerConfig) {
		c.Mounts = []*runtime.Mount{{ContainerPath: "/img", Readonly: true, Image: &runtime.ImageSpec{Image: volImage}}}
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{NamespaceOptions: ns}}
	}, "sleep", "100000")
	if r := execSync(t, rc, imgCtr, "sh", "-c", "stat -c %u:%g /img/bin/busybox /img/etc/berth-test-image"); strings.Join(strings.Fields(string(r.Stdout)), " ") != "0:0 0:0" {
		t.Errorf("image mount in a user-namespaced pod: %q %q", r.Stdout, r.Stderr)
	}

	privileged := func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true, NamespaceOptions: ns}}
	}
	cfg := &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "priv"}, Image: &runtime.ImageSpec{Image: busyboxImage}}
	privileged(cfg)
	if _, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, Config: cfg, SandboxConfig: podCfg}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a privileged container in a user-namespaced pod: %v, want InvalidArgument", err)
	}
	if _, err := rc.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
	if left := imageMountsLeft(b); len(left) > 0 {
		t.Errorf("image mounts left after RemovePodSandbox: %v", left)
	}
}
