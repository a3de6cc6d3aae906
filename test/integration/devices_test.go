package integration

import (
	"os"
	"strings"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDevices: ContainerConfig.devices, as a device plugin hands them to the
// kubelet, reach the container: the host node at the container path with its
// numbers, usable as far as its permissions allow and no further (the device
// cgroup refuses the rest, whatever the cgroup version).
//
// /dev/zero proves the node and reading; the cgroup's refusal is proved on
// /dev/loop-control, because libcontainer always allows its default devices
// (/dev/null, /dev/zero, /dev/full, /dev/random, /dev/urandom, /dev/tty, and /dev/net/tun, /dev/ptmx, ptys by number only)
// rwm by their numbers, whatever path they are given: /dev/zero mapped "r"
// stays writable, with every runtime on libcontainer.
func TestDevices(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("devices")
	pod := runPod(t, rc, podCfg)
	_, loopErr := os.Stat("/dev/loop-control")
	withDevices := func(devs ...*runtime.Device) func(*runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) {
			for _, d := range devs {
				if d.HostPath != "/dev/loop-control" || loopErr == nil {
					c.Devices = append(c.Devices, d)
				}
			}
		}
	}
	ro := startContainer(t, rc, pod, podCfg, "read-only", withDevices(
		&runtime.Device{HostPath: "/dev/zero", ContainerPath: "/dev/mydev", Permissions: "r"},
		&runtime.Device{HostPath: "/dev/loop-control", ContainerPath: "/dev/myloop", Permissions: "r"},
	), "sleep", "100000")
	sh := func(id, script string) (string, string, int32) {
		r := execSync(t, rc, id, "sh", "-c", script)
		return strings.TrimSpace(string(r.Stdout)), strings.TrimSpace(string(r.Stderr)), r.ExitCode
	}
	if out, errOut, code := sh(ro, "stat -c %t:%T /dev/mydev && head -c 4 /dev/mydev | wc -c"); out != "1:5\n4" || code != 0 {
		t.Errorf("/dev/zero at /dev/mydev: %q %q (exit %d), want its numbers 1:5 and 4 bytes read", out, errOut, code)
	}
	if loopErr != nil {
		t.Logf("no /dev/loop-control on this host (%v): the device cgroup's refusal is not tested", loopErr)
	} else {
		if out, errOut, code := sh(ro, "stat -c %t:%T /dev/myloop && exec 3</dev/myloop"); out != "a:ed" || code != 0 {
			t.Errorf("/dev/loop-control at /dev/myloop, opened for reading: %q %q (exit %d), want its numbers a:ed and success", out, errOut, code)
		}
		if out, errOut, code := sh(ro, "exec 3>/dev/myloop && echo opened"); code == 0 || !strings.Contains(errOut, "not permitted") {
			t.Errorf("/dev/loop-control \"r\" opened for writing: %q %q (exit %d), want the device cgroup's EPERM", out, errOut, code)
		}
		rw := startContainer(t, rc, pod, podCfg, "read-write", withDevices(
			&runtime.Device{HostPath: "/dev/loop-control", ContainerPath: "/dev/myloop", Permissions: "rw"},
		), "sleep", "100000")
		if out, errOut, code := sh(rw, "exec 3>/dev/myloop && echo opened"); out != "opened" || code != 0 {
			t.Errorf("/dev/loop-control \"rw\" opened for writing: %q %q (exit %d), want success", out, errOut, code)
		}
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
