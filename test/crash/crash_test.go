// Package crash kills berthd with SIGKILL at random points while clients
// churn pods, restarts it each time, then removes everything through it and
// checks the host for every kind of leftover: shims, mounts, cgroups, IP
// leases, cached attachments, veths, nat rules and chains, records and
// snapshots. `make test-crash` runs it alone; `make test-integration` (and
// so `make test`) runs it on the host. The seed of a run is logged, and
// BERTH_CRASH_SEED replays it.
package crash

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
	"github.com/berth-cri/berth/test/wait"
)

const (
	clients = 4
	kills   = 8
	image   = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
)

func TestKilledDuringChurnLeavesNothing(t *testing.T) {
	bin := util.RequireIntegration(t)
	reg := os.Getenv("BERTH_TEST_REGISTRY")
	if reg == "" {
		t.Skip("set BERTH_TEST_REGISTRY to the local test registry (make test does)")
	}
	rng := rand.New(rand.NewPCG(seed(t), 0))
	chainsBefore, cgroupsBefore := util.NatChains(), ownCgroups()
	b := util.NewBerthd(t, "[registries.\"registry.k8s.io\"]\nmirrors = [\"http://"+reg+"\"]\nmirrors_only = true\n")
	b.Start(t, bin)
	rc, ic := b.Clients(t)
	if _, err := ic.PullImage(callCtx(t), &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}

	ctx, stop := context.WithCancel(context.Background())
	c := &churn{rc: rc, logs: t.TempDir(), errs: map[string]int{}}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.run(ctx, i) }()
	}
	for range kills {
		// Kill once the clients have done some work since the restart,
		// at a random point of it.
		before := c.done.Load()
		wait.Until(t, "calls to succeed after the restart", func() bool { return c.done.Load() > before+int64(clients) })
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		b.Kill(t)
		b.Start(t, bin)
	}
	stop()
	wait.Within(t, "the clients to stop", func() error { wg.Wait(); return nil })
	t.Logf("%d cycles whole, %d calls succeeded, failed by code: %v", c.cycles.Load(), c.done.Load(), c.errs)
	// A RunPodSandbox whose client gave up (the clients' stop cancels their
	// calls) still makes its pod, for a retry to get: a graceful stop waits
	// for it, and the restart lists it.
	if code := b.Signal(t, syscall.SIGTERM, time.Minute); code != 0 {
		t.Fatalf("berthd exited %d after SIGTERM", code)
	}
	b.Start(t, bin)
	removeEverything(t, b)
	assertNothingLeft(t, b, chainsBefore, cgroupsBefore)
	// A start after all that finds nothing to recover or leave.
	b.Kill(t)
	b.Start(t, bin)
	removeEverything(t, b)
	assertNothingLeft(t, b, chainsBefore, cgroupsBefore)
}

func seed(t *testing.T) uint64 {
	s := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("BERTH_CRASH_SEED"), 10, 64); err == nil {
		s = v
	}
	t.Logf("seed %d (BERTH_CRASH_SEED replays it)", s)
	return s
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), util.CallTimeout())
	t.Cleanup(cancel)
	return ctx
}

// churn is the clients' pod cycles: run a pod, create and start a
// container in it, stop and remove the pod. A call that fails (berthd died
// under it, or is not up yet) ends the cycle; what it left is removed at
// the end.
type churn struct {
	rc           runtime.RuntimeServiceClient
	logs         string // the pods' log dirs go here
	done, cycles atomic.Int64
	mu           sync.Mutex
	errs         map[string]int // failed calls by gRPC code
}

func (c *churn) run(ctx context.Context, client int) {
	for n := 0; ctx.Err() == nil; n++ {
		if c.cycle(ctx, fmt.Sprintf("crash-%d-%d", client, n)) {
			c.cycles.Add(1)
		}
	}
}

func (c *churn) cycle(ctx context.Context, name string) bool {
	podCfg := &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "crash", Uid: name},
		LogDirectory: filepath.Join(c.logs, name)}
	var pod, ctr string
	steps := []func(context.Context) error{
		func(ctx context.Context) error {
			r, err := c.rc.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
			pod = r.GetPodSandboxId()
			return err
		},
		func(ctx context.Context) error {
			r, err := c.rc.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: podCfg,
				Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: image},
					Command: []string{"sleep", "100000"}, LogPath: "c.log"}})
			ctr = r.GetContainerId()
			return err
		},
		func(ctx context.Context) error {
			_, err := c.rc.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr})
			return err
		},
		func(ctx context.Context) error {
			_, err := c.rc.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod})
			return err
		},
		func(ctx context.Context) error {
			_, err := c.rc.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod})
			return err
		},
	}
	defer os.RemoveAll(podCfg.LogDirectory)
	for _, step := range steps {
		callCtx, cancel := context.WithTimeout(ctx, util.CallTimeout())
		err := step(callCtx)
		cancel()
		if err != nil {
			c.mu.Lock()
			c.errs[status.Code(err).String()]++
			c.mu.Unlock()
			if status.Code(err) == codes.Unavailable {
				time.Sleep(50 * time.Millisecond) // berthd is down: no busy loop
			}
			return false
		}
		c.done.Add(1)
	}
	return true
}

// removeEverything stops and removes every pod berthd lists, and every
// container (none should be left without its pod), on a connection of its
// own (the churn's may still be waiting to reconnect).
func removeEverything(t *testing.T, b *util.Berthd) {
	t.Helper()
	rc, _ := b.Clients(t)
	pods, err := rc.ListPodSandbox(callCtx(t), &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if _, err := rc.RemovePodSandbox(callCtx(t), &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			t.Errorf("remove pod %s (%s): %v", p.Id, p.Metadata.GetName(), err)
		}
	}
	ctrs, err := rc.ListContainers(callCtx(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs.Containers {
		t.Errorf("container %s (pod %s) listed after its pod was removed", c.Id, c.PodSandboxId)
	}
}

func assertNothingLeft(t *testing.T, b *util.Berthd, chainsBefore map[string]bool, cgroupsBefore []string) {
	t.Helper()
	wait.Until(t, "the shims to exit", func() bool { return len(util.ShimPids(b.Dir)) == 0 })
	var left []string
	for _, m := range util.MountsUnder(b.Dir) {
		left = append(left, "mount "+m)
	}
	for _, cg := range ownCgroups() {
		if !slices.Contains(cgroupsBefore, cg) {
			left = append(left, "cgroup "+cg)
		}
	}
	left = append(left, util.NetworkLeftovers(b, chainsBefore)...)
	for _, dir := range []string{"pods", "containers", "images/snapshots"} {
		entries, _ := os.ReadDir(filepath.Join(b.Root, dir))
		for _, e := range entries {
			left = append(left, filepath.Join(dir, e.Name()))
		}
	}
	entries, _ := os.ReadDir(filepath.Join(b.State, "pods"))
	for _, e := range entries {
		left = append(left, "state pods/"+e.Name())
	}
	if len(left) > 0 {
		t.Fatalf("left after every pod was removed:\n%s", strings.Join(left, "\n"))
	}
}

// ownCgroups lists the pod cgroups under Berth's own parent, in every
// hierarchy.
func ownCgroups() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + util.OwnCgroup + "/*/")
	unified, _ := filepath.Glob("/sys/fs/cgroup" + util.OwnCgroup + "/*/")
	return append(dirs, unified...)
}
