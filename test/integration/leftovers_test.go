package integration

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
)

// In a shared PID namespace (the pod's or the node's) the kernel leaves
// what a container's init started running when the init dies. Berth kills
// them before it reports the exit, as the peers do: once StopContainer
// returned, or the container is seen EXITED, nothing of it runs; its
// siblings and the pause are left alone.
func TestLeftoversDieWithTheInit(t *testing.T) {
	b, _, rc := containerBerthd(t)
	for _, mode := range []runtime.NamespaceMode{runtime.NamespaceMode_POD, runtime.NamespaceMode_NODE} {
		t.Run(mode.String(), func(t *testing.T) {
			podCfg := podConfig("leftovers-" + strings.ToLower(mode.String()))
			podCfg.LogDirectory = t.TempDir()
			podCfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Pid: mode}}}
			pod := runPod(t, rc, podCfg)
			inMode := func(c *runtime.ContainerConfig) {
				c.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{Pid: mode}}}
			}
			sibling := startContainer(t, rc, pod, podCfg, "sibling", inMode, "sleep", "100000")
			// A background child, and a daemon (double fork: reparented at
			// once); the init execs a third sleep.
			stopped := startContainer(t, rc, pod, podCfg, "stopped", inMode,
				"sh", "-c", "sleep 1000 & (setsid sleep 1001 &); exec sleep 1002")
			procs := sleepers(t, pod, stopped, 3)
			if _, err := rc.StopContainer(ctxT(t), &runtime.StopContainerRequest{ContainerId: stopped, Timeout: 30}); err != nil {
				t.Fatal(err)
			}
			if st := containerStatus(t, rc, stopped); st.State != runtime.ContainerState_CONTAINER_EXITED {
				t.Errorf("stopped container is %v", st.State)
			}
			assertDead(t, procs)
			// An init that ends by itself: what it left dies with it.
			ended := startContainer(t, rc, pod, podCfg, "ended", inMode,
				"sh", "-c", "sleep 1000 & (setsid sleep 1001 &); mkfifo /tmp/end; read x </tmp/end")
			procs = sleepers(t, pod, ended, 2)
			execSync(t, rc, ended, "sh", "-c", "echo >/tmp/end")
			if st := waitExited(t, rc, ended); st.ExitCode != 0 {
				t.Errorf("ended container exited %d", st.ExitCode)
			}
			assertDead(t, procs)
			if st := containerStatus(t, rc, sibling); st.State != runtime.ContainerState_CONTAINER_RUNNING {
				t.Errorf("the sibling is %v", st.State)
			}
			if r := execSync(t, rc, sibling, "true"); r.ExitCode != 0 {
				t.Errorf("exec in the sibling: %d %q", r.ExitCode, r.Stderr)
			}
			if mode == runtime.NamespaceMode_POD {
				if pauses := util.PauseChildren(util.ShimPids(b.Dir)[0]); len(pauses) != 1 {
					t.Errorf("pauses after the exits: %v", pauses)
				}
			}
			if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
				t.Fatal(err)
			}
			assertPodGone(t, b, pod)
		})
	}
}

// proc is a process as of when it was seen: pid and start time, so that
// another process that got its pid is not taken for it.
type proc struct {
	pid   int
	start string
}

// sleepers waits until the container's cgroup holds n of its long sleeps
// (sleep 100x) and returns them.
func sleepers(t *testing.T, pod, ctr string, n int) []proc {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out []proc
		for _, f := range strings.Fields(util.CgroupFile(t, "pids", "/berth/"+pod+"/"+ctr, "cgroup.procs", "cgroup.procs")) {
			pid, _ := strconv.Atoi(f)
			args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if st, err := procStat(pid); err == nil && strings.HasPrefix(string(args), "sleep\x00100") {
				out = append(out, proc{pid, st[19]})
			}
		}
		if len(out) == n {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s holds sleeps %v, want %d", ctr, out, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertDead checks, at once, that each process is gone or a zombie.
func assertDead(t *testing.T, procs []proc) {
	t.Helper()
	for _, p := range procs {
		st, err := procStat(p.pid)
		if os.IsNotExist(err) || errors.Is(err, syscall.ESRCH) || (err == nil && (st[19] != p.start || st[0] == "Z")) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("process %d of the exited container still runs (state %s)", p.pid, st[0])
	}
}
