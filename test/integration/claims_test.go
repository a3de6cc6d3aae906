package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
	"github.com/berth-cri/berth/test/wait"
)

// Each test here races two RPCs on one object, round after round, and checks
// that every call ends in success or a clear error and that nothing is left
// once the object is removed: the claims (sandbox/claim) give each pair one
// defined outcome, whichever call goes first.

const raceRounds = 8

// race runs a and b at once and waits for both, failing the test if either
// hangs.
func race(t *testing.T, a, b func()) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, f := range []func(){a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f()
		}()
	}
	close(start)
	wait.Within(t, "both calls", func() error { wg.Wait(); return nil })
}

// wantCode fails the test unless err is nil or has one of codes.
func wantCode(t *testing.T, what string, err error, ok ...codes.Code) {
	t.Helper()
	if err == nil {
		return
	}
	for _, c := range ok {
		if status.Code(err) == c {
			return
		}
	}
	t.Errorf("%s: %v (code %v), want success or one of %v", what, err, status.Code(err), ok)
}

func busyboxConfig(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: name},
		Image: &runtime.ImageSpec{Image: busyboxImage}, Command: []string{"sleep", "100000"}, LogPath: name + ".log"}
}

func podContainers(t *testing.T, rc runtime.RuntimeServiceClient, pod string) []*runtime.Container {
	t.Helper()
	resp, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: pod}})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Containers
}

// A create racing the pod's stop either ends before the stop begins its
// work (and the stop then stops the new container) or is refused as the
// pod is no longer ready; never a container that runs in a stopped pod.
func TestCreateRacesPodStop(t *testing.T) {
	b, _, rc := containerBerthd(t)
	var made, refused int
	for i := range raceRounds {
		podCfg := podConfig(fmt.Sprintf("race-stop-%d", i))
		podCfg.LogDirectory = t.TempDir()
		pod := runPod(t, rc, podCfg)
		var created *runtime.CreateContainerResponse
		var createErr, stopErr error
		race(t, func() {
			created, createErr = rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod,
				Config: busyboxConfig("c"), SandboxConfig: podCfg})
		}, func() {
			_, stopErr = rc.StopPodSandbox(ctxT(t), &runtime.StopPodSandboxRequest{PodSandboxId: pod})
		})
		if stopErr != nil {
			t.Fatalf("round %d: stop: %v", i, stopErr)
		}
		wantCode(t, "create", createErr, codes.FailedPrecondition)
		ctrs := podContainers(t, rc, pod)
		if createErr == nil {
			made++
			if len(ctrs) != 1 || ctrs[0].Id != created.ContainerId || ctrs[0].State != runtime.ContainerState_CONTAINER_EXITED {
				t.Errorf("round %d: the pod stopped after a create holds %v, want the new container EXITED", i, ctrs)
			}
			_, err := rc.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: created.ContainerId})
			if status.Code(err) != codes.FailedPrecondition {
				t.Errorf("round %d: a start in the stopped pod: %v, want FailedPrecondition", i, err)
			}
		} else {
			refused++
			if len(ctrs) != 0 {
				t.Errorf("round %d: a refused create left %v", i, ctrs)
			}
		}
		removePodGone(t, b, rc, pod)
	}
	t.Logf("%d creates before the stop, %d refused", made, refused)
}

// A create racing the pod's removal is done before the removal begins its
// work (and removed with the pod) or refused; nothing of it is left.
func TestCreateRacesPodRemove(t *testing.T) {
	b, _, rc := containerBerthd(t)
	for i := range raceRounds {
		podCfg := podConfig(fmt.Sprintf("race-remove-%d", i))
		podCfg.LogDirectory = t.TempDir()
		pod := runPod(t, rc, podCfg)
		var created *runtime.CreateContainerResponse
		var createErr, removeErr error
		race(t, func() {
			created, createErr = rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod,
				Config: busyboxConfig("c"), SandboxConfig: podCfg})
		}, func() {
			_, removeErr = rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
		})
		if removeErr != nil {
			t.Fatalf("round %d: remove: %v", i, removeErr)
		}
		wantCode(t, "create", createErr, codes.FailedPrecondition, codes.NotFound)
		if createErr == nil {
			if _, err := rc.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: created.ContainerId}); status.Code(err) != codes.NotFound {
				t.Errorf("round %d: the container created before the pod's removal: %v, want NotFound", i, err)
			}
		}
		if ctrs := podContainers(t, rc, pod); len(ctrs) != 0 {
			t.Errorf("round %d: containers of the removed pod: %v", i, ctrs)
		}
		assertPodGone(t, b, pod)
	}
}

// A start racing the container's removal either runs first (and the removal
// stops it) or finds the container gone; no process or mount is left.
func TestStartRacesRemove(t *testing.T) {
	b, _, rc := containerBerthd(t)
	podCfg := podConfig("race-start")
	podCfg.LogDirectory = t.TempDir()
	pod := runPod(t, rc, podCfg)
	for i := range raceRounds {
		resp, err := rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod,
			Config: busyboxConfig(fmt.Sprintf("c%d", i)), SandboxConfig: podCfg})
		if err != nil {
			t.Fatal(err)
		}
		id := resp.ContainerId
		var startErr, removeErr error
		race(t, func() {
			_, startErr = rc.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id})
		}, func() {
			_, removeErr = rc.RemoveContainer(ctxT(t), &runtime.RemoveContainerRequest{ContainerId: id})
		})
		if removeErr != nil {
			t.Fatalf("round %d: remove: %v", i, removeErr)
		}
		wantCode(t, "start", startErr, codes.NotFound)
		if _, err := rc.ContainerStatus(ctxT(t), &runtime.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
			t.Errorf("round %d: the removed container: %v, want NotFound", i, err)
		}
		if procs := cgroupProcs(pod, id); len(procs) > 0 {
			t.Errorf("round %d: processes of the removed container: %v", i, procs)
		}
		for _, m := range util.MountsUnder(b.Dir) {
			if strings.Contains(m, id) {
				t.Errorf("round %d: mount of the removed container left: %s", i, m)
			}
		}
	}
	if ctrs := podContainers(t, rc, pod); len(ctrs) != 0 {
		t.Errorf("containers left: %v", ctrs)
	}
	removePodGone(t, b, rc, pod)
}

// An image removed while a container is made from it: the create either
// has its snapshot first (and the container runs on, its layers kept) or
// finds the image gone; the removal always succeeds.
func TestRemoveImageRacesCreate(t *testing.T) {
	b, _, rc := containerBerthd(t)
	_, ic := b.Clients(t)
	podCfg := podConfig("race-image")
	podCfg.LogDirectory = t.TempDir()
	pod := runPod(t, rc, podCfg)
	for i := range raceRounds {
		if _, err := ic.PullImage(ctxT(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}}); err != nil {
			t.Fatal(err)
		}
		var created *runtime.CreateContainerResponse
		var createErr, removeErr error
		race(t, func() {
			created, createErr = rc.CreateContainer(ctxT(t), &runtime.CreateContainerRequest{PodSandboxId: pod,
				Config: busyboxConfig(fmt.Sprintf("c%d", i)), SandboxConfig: podCfg})
		}, func() {
			_, removeErr = ic.RemoveImage(ctxT(t), &runtime.RemoveImageRequest{Image: &runtime.ImageSpec{Image: busyboxImage}})
		})
		if removeErr != nil {
			t.Fatalf("round %d: remove image: %v", i, removeErr)
		}
		wantCode(t, "create", createErr, codes.NotFound)
		if createErr != nil {
			continue
		}
		id := created.ContainerId
		if _, err := rc.StartContainer(ctxT(t), &runtime.StartContainerRequest{ContainerId: id}); err != nil {
			t.Fatalf("round %d: start a container whose image was removed: %v", i, err)
		}
		if r := execSync(t, rc, id, "ls", "/bin/sh"); r.ExitCode != 0 {
			t.Errorf("round %d: the container's rootfs lost its image: %q", i, r.Stderr)
		}
		removeContainer(t, rc, id)
	}
	removePodGone(t, b, rc, pod)
}

func removePodGone(t *testing.T, b *util.Berthd, rc runtime.RuntimeServiceClient, pod string) {
	t.Helper()
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
