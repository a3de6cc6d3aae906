package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/test/util"
	"github.com/berth-cri/berth/test/wait"
)

// cgroupProcs lists the processes (pid → argv joined by spaces) whose cgroup
// is the container's (/berth/<pod>/<ctr>, in any hierarchy).
func cgroupProcs(pod, ctr string) map[int]string {
	suffix := util.OwnCgroup + "/" + pod + "/" + ctr
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		for _, line := range strings.Split(string(cg), "\n") {
			if strings.HasSuffix(line, suffix) {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				out[pid] = strings.TrimSpace(string(bytes.ReplaceAll(cmd, []byte{0}, []byte{' '})))
				break
			}
		}
	}
	return out
}

// newerSchema is record with its schema version raised, as a newer Berth
// would write it.
func newerSchema(t *testing.T, record []byte) []byte {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal(record, &env); err != nil {
		t.Fatal(err)
	}
	env["version"] = json.RawMessage("99")
	out, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// podFacts is what must outlive a restart with an unreadable record.
type podFacts struct {
	procs  map[int]string // the container's processes
	mounts []string       // under berthd's dir: rootfs, pins, shm
	shims  []int
	files  []string // snapshots and layers on disk, the CNI cache
}

func factsOf(t *testing.T, b *util.Berthd, pod, ctr string) podFacts {
	t.Helper()
	f := podFacts{procs: cgroupProcs(pod, ctr), mounts: util.MountsUnder(b.Dir), shims: util.ShimPids(b.Dir)}
	slices.Sort(f.mounts)
	slices.Sort(f.shims)
	for _, pattern := range []string{"images/snapshots/*", "images/layers/*", "cni/cache/*/*"} {
		m, _ := filepath.Glob(filepath.Join(b.Root, pattern))
		f.files = append(f.files, m...)
	}
	slices.Sort(f.files)
	return f
}

func (f podFacts) mustEqual(t *testing.T, what string, after podFacts) {
	t.Helper()
	// By pid: a command line read as the init was exec'ing can be empty.
	pids := func(m map[int]string) []int { return slices.Sorted(maps.Keys(m)) }
	if len(f.procs) == 0 || fmt.Sprint(pids(f.procs)) != fmt.Sprint(pids(after.procs)) {
		t.Errorf("%s: container processes %v before the restart, %v after", what, f.procs, after.procs)
	}
	for _, c := range []struct {
		name          string
		before, after any
	}{{"mounts", f.mounts, after.mounts}, {"shims", f.shims, after.shims}, {"snapshots, layers, CNI cache", f.files, after.files}} {
		if fmt.Sprint(c.before) != fmt.Sprint(c.after) {
			t.Errorf("%s: %s %v before the restart, %v after", what, c.name, c.before, c.after)
		}
	}
}

// unreadableRecordCase runs a pod with a running container, stops berthd,
// spoils the record that recordOf names, starts berthd again and checks that
// nothing the record describes was destroyed. It then restores the record
// and removes the pod.
func unreadableRecordCase(t *testing.T, b *util.Berthd, bin, name string, recordOf func(pod, ctr string) string,
	spoil func([]byte) []byte) {
	rc, _ := b.Clients(t)
	cfg := podConfig("records-" + strings.ReplaceAll(name, " ", "-"))
	pod := runPod(t, rc, cfg)
	ctr := startContainer(t, rc, pod, cfg, "sleeper", nil, "sleep", "100000")
	before := factsOf(t, b, pod, ctr)
	path := recordOf(pod, ctr)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b.Kill(t)
	bad := spoil(orig)
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	listed, err := rc.ListContainers(ctxT(t), &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatalf("%s: berthd does not serve: %v", name, err)
	}
	for _, c := range listed.GetContainers() {
		if c.GetId() == ctr || c.GetPodSandboxId() == pod {
			// The kubelet removes a container whose pod it cannot see.
			t.Errorf("%s: container %s of pod %s is listed", name, c.GetId(), c.GetPodSandboxId())
		}
	}
	before.mustEqual(t, name, factsOf(t, b, pod, ctr))
	if got, _ := os.ReadFile(path); !bytes.Equal(got, bad) {
		t.Errorf("%s: the record was changed: %q", name, got)
	}
	if !strings.Contains(b.Log(), filepath.Base(path)) || !strings.Contains(b.Log(), "unreadable") {
		t.Errorf("%s: berthd logged no error naming %s", name, path)
	}

	// Clean up: the readable record back, then the pod through CRI.
	b.Kill(t)
	if err := os.WriteFile(path, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	b.Start(t, bin)
	rc, _ = b.Clients(t)
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
	if t.Failed() {
		t.FailNow()
	}
}

var spoilers = []struct {
	name  string
	spoil func(t *testing.T) func([]byte) []byte
}{
	{"corrupt", func(*testing.T) func([]byte) []byte {
		return func(b []byte) []byte { return append(bytes.Clone(b[:len(b)/2]), "\x00garbage"...) }
	}},
	{"newer schema", func(t *testing.T) func([]byte) []byte {
		return func(b []byte) []byte { return newerSchema(t, b) }
	}},
}

// A container whose record cannot be read after a restart keeps running: its
// process, rootfs mount, snapshot and the image's layers stay, and so does
// the record file; berthd serves.
func TestUnreadableContainerRecordKeepsTheContainer(t *testing.T) {
	b, bin, _ := containerBerthd(t)
	for _, s := range spoilers {
		unreadableRecordCase(t, b, bin, "container record "+s.name, func(_, ctr string) string {
			return filepath.Join(b.Root, "containers", ctr+".json")
		}, s.spoil(t))
	}
}

// A pod whose record cannot be read after a restart keeps its pins, shm,
// network, shim and containers; berthd serves.
func TestUnreadablePodRecordKeepsThePod(t *testing.T) {
	b, bin, _ := containerBerthd(t)
	for _, s := range spoilers {
		unreadableRecordCase(t, b, bin, "pod record "+s.name, func(pod, _ string) string {
			return filepath.Join(b.Root, "pods", pod+".json")
		}, s.spoil(t))
	}
}

// An ExecSync with no timeout whose caller gives up (its deadline passes)
// has its process killed: no "sleep 1000" remains in the container.
func TestExecSyncWhoseCallerGivesUpIsKilled(t *testing.T) {
	b, _, rc := containerBerthd(t)
	cfg := podConfig("exec-gives-up")
	pod := runPod(t, rc, cfg)
	ctr := startContainer(t, rc, pod, cfg, "sleeper", nil, "sleep", "100000")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := rc.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: ctr, Cmd: []string{"sleep", "1000"}})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("ExecSync with a client deadline = %v", err)
	}
	// The exec'd process may still be joining the container when the
	// caller gives up (it shows as "berth-runtime init" until it execs
	// "sleep 1000"; on a slow host that takes seconds): the runtime server
	// kills it once its start returns. Only the container's init is left.
	deadline := time.Now().Add(wait.Bound)
	for len(cgroupProcs(pod, ctr)) > 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if procs := cgroupProcs(pod, ctr); len(procs) != 1 {
		t.Errorf("the container's processes: %v, want only its init (the exec'd sleep killed)", procs)
	}
	if _, err := rc.RemovePodSandbox(ctxT(t), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	assertPodGone(t, b, pod)
}
