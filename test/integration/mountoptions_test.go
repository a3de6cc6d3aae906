package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// TestMountOptions: Mount.mount_options (KEP-5855) noexec, nodev and nosuid
// hold inside the container (a script there does not run, a device node
// there does not open) while the same directory bound without them does;
// ContainerStatus shows them; Status advertises them; any other option is
// InvalidArgument naming it, and leaves no container. The host directory
// itself never becomes a mount.
func TestMountOptions(t *testing.T) {
	b, _, rc := containerBerthd(t)
	st, err := rc.Status(ctxT(t), &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.GetFeatures().GetMountOptions() {
		t.Errorf("Status features %v: mount_options not advertised", st.GetFeatures())
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho ran\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	podCfg := podConfig("mount-options")
	pod := runPod(t, rc, podCfg)
	id := startContainer(t, rc, pod, podCfg, "opts", func(c *runtime.ContainerConfig) {
		c.Mounts = []*runtime.Mount{
			{HostPath: src, ContainerPath: "/mnt/opts", MountOptions: []string{"noexec", "nodev", "nosuid"}},
			{HostPath: src, ContainerPath: "/mnt/plain"},
		}
	}, "sleep", "100000")
	r := execSync(t, rc, id, "sh", "-c", "grep ' /mnt/opts ' /proc/self/mountinfo | cut -d' ' -f6")
	flags := strings.Split(strings.TrimSpace(string(r.Stdout)), ",")
	for _, f := range []string{"noexec", "nodev", "nosuid"} {
		if !slices.Contains(flags, f) {
			t.Errorf("mount flags of /mnt/opts %q lack %s (%s)", flags, f, r.Stderr)
		}
	}
	for _, dir := range []string{"/mnt/opts", "/mnt/plain"} {
		want := dir == "/mnt/plain"
		if r := execSync(t, rc, id, "sh", "-c", dir+"/run.sh"); (r.ExitCode == 0) != want {
			t.Errorf("%s/run.sh: exit %d %q %q, want it to run: %v", dir, r.ExitCode, r.Stdout, r.Stderr, want)
		}
		if r := execSync(t, rc, id, "head", "-c", "0", dir+"/null"); (r.ExitCode == 0) != want {
			t.Errorf("open %s/null: exit %d %q, want it to open: %v", dir, r.ExitCode, r.Stderr, want)
		}
	}
	if got := containerStatus(t, rc, id).GetMounts(); len(got) != 2 ||
		!slices.Equal(got[0].GetMountOptions(), []string{"noexec", "nodev", "nosuid"}) || len(got[1].GetMountOptions()) != 0 {
		t.Errorf("status mounts %v", got)
	}
	for _, o := range []string{"exec", "rw", "remount", "shared"} {
		_, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
			Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "bad-" + o}, Image: &runtime.ImageSpec{Image: busyboxImage},
				Mounts: []*runtime.Mount{{HostPath: src, ContainerPath: "/mnt/bad", Readonly: true, MountOptions: []string{"nodev", o}}}}})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "mount_options") || !strings.Contains(err.Error(), o) {
			t.Errorf("mount option %q: %v, want InvalidArgument naming it", o, err)
		}
	}
	list, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: pod}})
	if err != nil || len(list.Containers) != 1 {
		t.Errorf("containers after refused creates: %v %v", list.GetContainers(), err)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
	if m := util.MountsUnder(src); len(m) != 0 {
		t.Errorf("mounts left on the host directory: %v", m)
	}
}
