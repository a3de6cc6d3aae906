package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/selinux/go-selinux"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// On a host with SELinux enforcing (hack/vm.sh's VM with VM_LSM=selinux,
// where berthd runs in the container engine's domain; this CI host has no
// SELinux): a pod's containers run as container_t at the pod's MCS level (two
// categories, another pod's differ), their rootfs and /dev/shm carry
// container_file_t at that level, and so do the pod's pause and its root (a
// privileged pod's too); a container that names a level gets it (and
// its rootfs; /dev/shm stays the pod's); a privileged container is not
// confined to container_t (the policy makes it spc_t); a host dir is
// writable from a container only once relabelled (selinux_relabel), at s0.
func TestSELinux(t *testing.T) {
	if !selinux.GetEnabled() {
		t.Skip("this host has no SELinux")
	}
	if selinux.EnforceMode() != selinux.Enforcing {
		t.Skip("SELinux is not enforcing")
	}
	b, _, rc := containerBerthd(t)
	if l, err := selinux.PidLabel(b.Pid()); err != nil || !strings.Contains(l, ":container_engine_t:") {
		t.Fatalf("berthd runs as %q (%v), not in the container engine's domain: the test would prove nothing", l, err)
	}
	podCfg := podConfig("selinux")
	pod := runPod(t, rc, podCfg)

	label := regexp.MustCompile(`^system_u:system_r:container_t:(s0:c(\d+),c(\d+))$`)
	plain := startLabelled(t, rc, pod, podCfg, "plain", nil)
	m := label.FindStringSubmatch(plain.process)
	if m == nil || m[2] == m[3] {
		t.Fatalf("a pod's container runs as %q, want container_t at a level of two categories", plain.process)
	}
	level := m[1]
	podFiles := "system_u:object_r:container_file_t:" + level
	plain.wantFiles(t, podFiles, podFiles)

	// The pause, PID 1 of the pod's shared PID namespace, is of the pod too:
	// its domain and level, and its root (all of its mounts) the pod's files.
	if r := execSync(t, rc, plain.id, "cat", "/proc/1/attr/current"); strings.TrimRight(string(r.Stdout), "\x00\n") != plain.process {
		t.Errorf("the pause runs as %q (%s), want the pod's %q", r.Stdout, r.Stderr, plain.process)
	}
	if r := execSync(t, rc, plain.id, "cat", "/proc/1/mountinfo"); !strings.Contains(string(r.Stdout), `,context="`+podFiles+`"`) {
		t.Errorf("the pause's mounts (%s):\n%s\nwant its root with context %s", r.Stderr, r.Stdout, podFiles)
	}
	if other := startLabelled(t, rc, pod, podCfg, "other", nil); other.process != plain.process {
		t.Errorf("two containers of a pod run as %q and %q", plain.process, other.process)
	}
	named := startLabelled(t, rc, pod, podCfg, "named", &runtime.LinuxContainerSecurityContext{
		SelinuxOptions: &runtime.SELinuxOption{Level: "s0:c100,c200"}})
	if named.process != "system_u:system_r:container_t:s0:c100,c200" {
		t.Errorf("a container that names level s0:c100,c200 runs as %q", named.process)
	}
	// Its /dev/shm is the pod's, at the pod's level.
	named.wantFiles(t, "system_u:object_r:container_file_t:s0:c100,c200", podFiles)

	priv := startLabelled(t, rc, pod, podCfg, "privileged", &runtime.LinuxContainerSecurityContext{Privileged: true})
	if strings.Contains(priv.process, ":container_t:") || strings.HasSuffix(priv.process, ":"+level) {
		t.Errorf("a privileged container runs as %q: confined, at the pod's level", priv.process)
	}

	// A privileged pod has labels too (its pause and files carry them) and
	// its unprivileged containers share its level; its privileged ones run
	// unlabelled, but options the policy does not know are refused still.
	privCfg := podConfig("selinux-privileged")
	privCfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
	privPod := runPod(t, rc, privCfg)
	inPriv := startLabelled(t, rc, privPod, privCfg, "unprivileged", nil)
	if label.FindStringSubmatch(inPriv.process) == nil {
		t.Errorf("an unprivileged container of a privileged pod runs as %q", inPriv.process)
	}
	if r := execSync(t, rc, inPriv.id, "cat", "/proc/1/attr/current"); strings.TrimRight(string(r.Stdout), "\x00\n") != inPriv.process {
		t.Errorf("a privileged pod's pause runs as %q (%s), want its containers' %q", r.Stdout, r.Stderr, inPriv.process)
	}
	if _, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: privPod, SandboxConfig: privCfg,
		Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "malformed"}, Image: &runtime.ImageSpec{Image: busyboxImage},
			Command: []string{"true"}, Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				Privileged: true, SelinuxOptions: &runtime.SELinuxOption{Level: "s0,c4,c5"}}}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a privileged container with level s0,c4,c5: %v, want InvalidArgument", err)
	}

	otherCfg := podConfig("selinux2")
	otherPod := runPod(t, rc, otherCfg)
	second := startLabelled(t, rc, otherPod, otherCfg, "plain", nil)
	if m := label.FindStringSubmatch(second.process); m == nil || m[1] == level {
		t.Errorf("another pod's container runs as %q (the first pod's level is %s)", second.process, level)
	}

	// A host dir: container_t may not write the host's files (tmp_t)...
	vol := t.TempDir()
	withVolume := func(relabel bool) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{ContainerPath: "/vol", HostPath: vol, SelinuxRelabel: relabel}}
		}
	}
	write := "echo x > /vol/f-$$ && echo written"
	if r := execSync(t, rc, startContainer(t, rc, pod, podCfg, "unlabelled-volume", withVolume(false), "sleep", "100000"),
		"sh", "-c", write); r.ExitCode == 0 || !strings.Contains(string(r.Stderr), "denied") {
		t.Errorf("a write to a host dir not relabelled: exit %d, %q %q", r.ExitCode, r.Stdout, r.Stderr)
	}
	// ... until it is relabelled for the pod's containers, at s0.
	if r := execSync(t, rc, startContainer(t, rc, pod, podCfg, "relabelled-volume", withVolume(true), "sleep", "100000"),
		"sh", "-c", write); r.ExitCode != 0 {
		t.Errorf("a write to a relabelled host dir: exit %d, %q", r.ExitCode, r.Stderr)
	}
	if l, err := selinux.FileLabel(vol); err != nil || l != "system_u:object_r:container_file_t:s0" {
		t.Errorf("the relabelled host dir is %q (%v), want container_file_t at s0", l, err)
	}

	for _, p := range []string{pod, otherPod, privPod} {
		if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p}); err != nil {
			t.Fatal(err)
		}
	}
	assertPodGone(t, b, pod)
	assertPodGone(t, b, otherPod, privPod)
}

// labelled is a running container: its process context as it sees it, and
// its host pid.
type labelled struct {
	id, name, process string
	pid               int
}

// startLabelled starts a container with the security context sc and reads
// its context from inside (/proc/self/attr/current); the host pid is found by
// the container's unique command line.
func startLabelled(t *testing.T, rc runtime.RuntimeServiceClient, pod string, podCfg *runtime.PodSandboxConfig, name string,
	sc *runtime.LinuxContainerSecurityContext) labelled {
	t.Helper()
	arg := fmt.Sprintf("%d", 100000+time.Now().UnixNano()%100000)
	id := startContainer(t, rc, pod, podCfg, name, func(c *runtime.ContainerConfig) {
		c.Linux = &runtime.LinuxContainerConfig{SecurityContext: sc}
	}, "sleep", arg)
	r := execSync(t, rc, id, "cat", "/proc/self/attr/current")
	if r.ExitCode != 0 {
		t.Fatalf("%s: read its context: %s", name, r.Stderr)
	}
	c := labelled{id: id, name: name, process: strings.TrimRight(string(r.Stdout), "\x00\n")}
	t.Logf("%s runs as %s", name, c.process)
	want := []byte("sleep\x00" + arg + "\x00")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if data, _ := os.ReadFile(p); bytes.Equal(data, want) {
			fmt.Sscanf(p, "/proc/%d/cmdline", &c.pid)
		}
	}
	if c.pid == 0 {
		t.Fatalf("%s: no process runs sleep %s", name, arg)
	}
	if l, err := selinux.PidLabel(c.pid); err != nil || l != c.process {
		t.Errorf("%s: the host sees its process as %q (%v), it sees itself as %q", name, l, err, c.process)
	}
	return c
}

// wantFiles checks the context of the container's rootfs and of its /dev/shm.
func (c labelled) wantFiles(t *testing.T, rootfs, shm string) {
	t.Helper()
	for p, want := range map[string]string{"/": rootfs, "/bin/sh": rootfs, "/dev/shm": shm} {
		if l, err := selinux.FileLabel(fmt.Sprintf("/proc/%d/root%s", c.pid, p)); err != nil || l != want {
			t.Errorf("%s: %s is %q (%v), want %q", c.name, p, l, err, want)
		}
	}
}
