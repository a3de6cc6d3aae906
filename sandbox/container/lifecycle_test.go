package container

import (
	"context"
	"errors"
	"slices"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/test/wait"
)

func (h *harness) create(id string) *Container {
	h.t.Helper()
	c, err := h.svc.Create(context.Background(), h.input(id, nil))
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) started(id string) *Container {
	h.t.Helper()
	h.create(id)
	if err := h.svc.Start(context.Background(), id); err != nil {
		h.t.Fatal(err)
	}
	return h.get(id)
}

func (h *harness) get(id string) *Container {
	h.t.Helper()
	c, err := h.store.Get(id)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func TestStart(t *testing.T) {
	h := newHarness(t)
	c := h.started("c1")
	if c.State != Running || c.StartedAt.IsZero() || !h.run.shims[testPod.ID].ctrs["c1"].started {
		t.Fatalf("started %+v", c)
	}
	if err := h.svc.Start(context.Background(), "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("second start = %v", err)
	}
	if err := h.svc.Start(context.Background(), "nope"); !errdefs.IsNotFound(err) {
		t.Fatalf("start of a missing container = %v", err)
	}
}

// A start that the shim refuses leaves the container CREATED, for a retry
// or a remove. One whose shim is gone fails too, and the pod's exit watcher
// settles the container as killed (it may do so before the start looks).
func TestStartFailureKeepsItCreated(t *testing.T) {
	for name, inject := range map[string]func(h *harness){
		"shim start": func(h *harness) { h.run.inject("start", "c1") },
		"shim gone":  func(h *harness) { h.run.kill(testPod.ID) },
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.create("c1")
			inject(h)
			if err := h.svc.Start(context.Background(), "c1"); err == nil {
				t.Fatal("started")
			}
			c := h.get("c1")
			if !c.StartedAt.IsZero() || (c.State != Created && (name == "shim start" || c.State != Exited)) {
				t.Fatalf("after a failed start: %+v", c)
			}
			if name == "shim gone" {
				wait.Until(t, "the exit watcher to settle the container", func() bool { return h.get("c1").State == Exited })
				if c := h.get("c1"); c.ExitCode != 137 || !c.StartedAt.IsZero() {
					t.Fatalf("settled as %+v", c)
				}
			}
		})
	}
}

func TestStopSignals(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ignoreTerm bool
		timeout    int
		want       []syscall.Signal
		code       int32
	}{
		{"stop signal", false, 10, []syscall.Signal{syscall.SIGUSR1}, 128 + int32(syscall.SIGUSR1)},
		{"ignored, then killed", true, 10, []syscall.Signal{syscall.SIGUSR1, syscall.SIGKILL}, 137},
		{"no grace", false, 0, []syscall.Signal{syscall.SIGKILL}, 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.run.ignoreTerm = tc.ignoreTerm
			in := h.input("c1", nil)
			in.Record.StopSignal = int(syscall.SIGUSR1)
			if _, err := h.svc.Create(context.Background(), in); err != nil {
				t.Fatal(err)
			}
			if err := h.svc.Start(context.Background(), "c1"); err != nil {
				t.Fatal(err)
			}
			if err := h.svc.Stop(context.Background(), "c1", secs(tc.timeout)); err != nil {
				t.Fatal(err)
			}
			c := h.get("c1")
			if got := h.run.shims[testPod.ID].ctrs["c1"].signals; !slices.Equal(got, tc.want) {
				t.Errorf("signals %v, want %v", got, tc.want)
			}
			if c.State != Exited || c.ExitCode != tc.code || c.Reason != "Error" {
				t.Fatalf("stopped %+v", c)
			}
		})
	}
}

// Stop is idempotent: a missing, exited, or never started container.
func TestStopIdempotent(t *testing.T) {
	h := newHarness(t)
	if err := h.svc.Stop(context.Background(), "nope", 0); err != nil {
		t.Fatalf("stop of a missing container = %v", err)
	}
	h.create("c1")
	if err := h.svc.Stop(context.Background(), "c1", secs(10)); err != nil {
		t.Fatal(err)
	}
	if c := h.get("c1"); c.State != Exited || c.ExitCode != 137 {
		t.Fatalf("a created container stopped: %+v", c)
	}
	if err := h.svc.Stop(context.Background(), "c1", secs(10)); err != nil {
		t.Fatalf("second stop = %v", err)
	}
}

// A stop whose signal fails fails, the container still RUNNING; one whose
// shim is gone makes it UNKNOWN and succeeds.
func TestStopFailures(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.run.injectOnce("signal", "c1")
	if err := h.svc.Stop(context.Background(), "c1", secs(10)); !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	if c := h.get("c1"); c.State != Running {
		t.Fatalf("after a failed stop: %+v", c)
	}
	h.run.kill(testPod.ID)
	if err := h.svc.Stop(context.Background(), "c1", secs(10)); err != nil {
		t.Fatal(err)
	}
	// Stop finds the shim gone and marks the container UNKNOWN, unless the
	// pod's exit watcher settled it first; either way the watcher settles
	// it, to one outcome: killed, in words that name the shim.
	if c := h.get("c1"); c.State != Unknown && c.State != Exited {
		t.Fatalf("after the shim died: %+v", c)
	}
	wait.Until(t, "the exit watcher to settle the container", func() bool { return h.get("c1").State == Exited })
	if c := h.get("c1"); c.ExitCode != 137 || c.Message != "berth-shim of the pod exited; the container was killed" {
		t.Fatalf("settled as %+v", c)
	}
}

func TestStopPod(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.started("c2")
	if err := h.svc.StopPod(context.Background(), testPod.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if c := h.get(id); c.State != Exited {
			t.Errorf("%s: %s", id, c.State)
		}
	}
}

func TestRemove(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	if err := h.svc.Remove(context.Background(), "c1", testPod.CgroupParent); err != nil {
		t.Fatal(err)
	}
	h.assertNothingLeft("c1")
	if want := []string{"/kubepods/pod1/c1 up to /kubepods/pod1"}; !slices.Equal(h.os.removed, want) {
		t.Errorf("cgroups removed %v, want %v", h.os.removed, want)
	}
	if err := h.svc.Remove(context.Background(), "c1", testPod.CgroupParent); err != nil {
		t.Fatalf("second remove = %v", err)
	}
}

// A remove whose stop or shim delete fails keeps everything, record
// included, for the kubelet's retry.
func TestRemoveFailureKeepsEverything(t *testing.T) {
	for name, op := range map[string]string{"stop": "signal", "shim delete": "delete"} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.started("c1")
			h.run.inject(op, "c1")
			if err := h.svc.Remove(context.Background(), "c1", testPod.CgroupParent); !errors.Is(err, errInjected) {
				t.Fatalf("err = %v", err)
			}
			if _, err := h.store.Get("c1"); err != nil {
				t.Fatal(err)
			}
			if _, mounts := h.os.left(stateDir + "/containers/c1"); len(mounts) != 3 || !h.snaps.has("c1") || len(h.os.removed) > 0 {
				t.Fatalf("mounts %v, cgroups removed %v", mounts, h.os.removed)
			}
		})
	}
}

// A mount that will not go keeps what is under it (its snapshot, the
// container's dir) for recovery; the record goes all the same, as before
// the service (RemoveContainer succeeds).
func TestRemoveWithAStuckMount(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.os.inject("unmount", "/rootfs")
	if err := h.svc.Remove(context.Background(), "c1", testPod.CgroupParent); err != nil {
		t.Fatal(err)
	}
	dir := stateDir + "/containers/c1"
	if _, mounts := h.os.left(dir); !slices.Equal(mounts, []string{dir + "/rootfs"}) || !h.snaps.has("c1") || h.snaps.has("c1.image1") {
		t.Fatalf("mounts %v", mounts)
	}
	if _, err := h.store.Get("c1"); !errdefs.IsNotFound(err) {
		t.Fatalf("record: %v", err)
	}
}

// With its shim dead, a container is removed all the same; its cgroup,
// which the shim no longer destroys, is removed.
func TestRemoveWithTheShimGone(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.run.kill(testPod.ID)
	if err := h.svc.Remove(context.Background(), "c1", testPod.CgroupParent); err != nil {
		t.Fatal(err)
	}
	h.assertNothingLeft("c1")
	if len(h.os.removed) != 1 {
		t.Errorf("cgroups removed %v", h.os.removed)
	}
}

func TestRemovePod(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.create("c2")
	sh := h.run.shims[testPod.ID]
	sh.ctrs["unrecorded"] = &fakeCtr{}
	if err := h.svc.RemovePod(context.Background(), testPod.ID, testPod.CgroupParent); err != nil {
		t.Fatal(err)
	}
	h.assertNothingLeft("c1")
	h.assertNothingLeft("c2")
	if len(sh.ctrs) != 0 || !slices.Equal(h.run.stopped, []string{testPod.ID}) {
		t.Fatalf("shim left with %v, stopped %v", sh.ctrs, h.run.stopped)
	}
}

func TestUpdateResources(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	limit := int64(64 << 20)
	u := ResourceUpdate{Linux: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}, Record: &Resources{MemoryLimit: limit}}
	if err := h.svc.UpdateResources(context.Background(), "c1", u); err != nil {
		t.Fatal(err)
	}
	if c := h.get("c1"); c.Resources == nil || c.Resources.MemoryLimit != limit {
		t.Fatalf("record %+v", c.Resources)
	}
	// The shim refuses: the record keeps the settings the shim keeps.
	h.run.injectOnce("update", "c1")
	u2 := ResourceUpdate{Linux: &specs.LinuxResources{}, Record: &Resources{MemoryLimit: 1}}
	if err := h.svc.UpdateResources(context.Background(), "c1", u2); !errors.Is(err, errInjected) {
		t.Fatalf("err = %v", err)
	}
	if c := h.get("c1"); c.Resources.MemoryLimit != limit {
		t.Fatalf("record changed by a refused update: %+v", c.Resources)
	}
}

// When the record cannot be written, the shim gets the previous settings
// back.
func TestUpdateResourcesRecordFailureSetsThePreviousBack(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	prev := &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}
	h.removeStoreDir()
	err := h.svc.UpdateResources(context.Background(), "c1",
		ResourceUpdate{Linux: &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "1"}}, Record: &Resources{CpusetCPUs: "1"}, Previous: prev})
	if err == nil {
		t.Fatal("updated without a record")
	}
	if got := h.run.shims[testPod.ID].ctrs["c1"].spec.Linux.Resources; got != prev {
		t.Fatalf("shim left with %+v", got)
	}
}

func TestUpdateResourcesRefusesExited(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	if err := h.svc.Stop(context.Background(), "c1", 0); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.UpdateResources(context.Background(), "c1", ResourceUpdate{Linux: &specs.LinuxResources{}}); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("err = %v", err)
	}
}
