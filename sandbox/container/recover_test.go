package container

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
)

func (h *harness) createIn(pod Pod, id string) {
	h.t.Helper()
	in := h.input(id, nil)
	in.Pod, in.Record.PodID = pod, pod.ID
	if _, err := h.svc.Create(context.Background(), in); err != nil {
		h.t.Fatal(err)
	}
	if err := h.svc.Start(context.Background(), id); err != nil {
		h.t.Fatal(err)
	}
}

// restart is berthd coming back: the records are loaded again, the shims,
// mounts and snapshots are as they were.
func (h *harness) restart() {
	h.t.Helper()
	h.svc.Close()
	h.svc.watchers.Wait()
	st, err := NewStore(h.dir)
	if err == nil {
		err = st.Load(context.Background())
	}
	if err != nil {
		h.t.Fatal(err)
	}
	h.store = st
	h.svc = NewService(Options{Store: st, Runner: h.run, Snapshots: h.snaps, OS: h.os, StateDir: stateDir})
}

// kept checks that container id of pod keeps its mounts, snapshot and
// place in its shim.
func (h *harness) kept(pod, id string) {
	h.t.Helper()
	if _, mounts := h.os.left(stateDir + "/containers/" + id); len(mounts) != 3 {
		h.t.Errorf("%s: mounts %v", id, mounts)
	}
	if !h.snaps.has(id) || !h.run.holds(pod, id) {
		h.t.Errorf("%s: snapshot %v, in its shim %v", id, h.snaps.has(id), h.run.holds(pod, id))
	}
}

func TestRecover(t *testing.T) {
	h := newHarness(t)
	gone, unread := Pod{ID: "gone", CgroupParent: "/kubepods/gone"}, Pod{ID: "unread", CgroupParent: "/kubepods/unread"}
	h.createIn(testPod, "live")
	h.createIn(testPod, "bad")
	h.createIn(gone, "orphaned")
	h.createIn(unread, "held")
	// What a crash in the middle of a create left, without a record: a
	// container in the shim, a dir with a mount, snapshots.
	h.run.shims[testPod.ID].ctrs["cut"] = &fakeCtr{}
	h.os.mount(stateDir+"/containers/cut/rootfs", "")
	h.snaps.keys["cut"], h.snaps.keys["cut.image1"], h.snaps.keys["lost"] = "i", "i", "i"
	h.run.files["stale"] = true // a pod gone with its shim
	h.restart()
	if err := os.WriteFile(filepath.Join(h.dir, "bad.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.restart()

	pods := map[string]Pod{testPod.ID: testPod}
	h.svc.Recover(context.Background(), RecoverInput{
		Pod:            func(id string) (Pod, bool) { p, ok := pods[id]; return p, ok },
		UnreadablePods: []string{unread.ID},
	})

	h.kept(testPod.ID, "live")
	if _, err := h.svc.Get("live"); err != nil {
		t.Errorf("live: %v", err)
	}
	// An unreadable record keeps everything of its container.
	h.kept(testPod.ID, "bad")
	// A pod whose record is unreadable keeps its shim and containers,
	// held: not listed.
	h.kept(unread.ID, "held")
	if _, err := h.svc.Get("held"); !errdefs.IsNotFound(err) {
		t.Errorf("held is listed: %v", err)
	}
	if !slices.Contains(h.store.Unreadable(), "held") {
		t.Errorf("held is not kept as unreadable: %v", h.store.Unreadable())
	}
	// A container of a pod that is gone is removed, and the pod's shim.
	h.assertNothingLeftOf(gone.ID, "orphaned")
	// What no record owns goes.
	h.assertNothingLeftOf(testPod.ID, "cut")
	if h.snaps.has("lost") {
		t.Error("an unrecorded snapshot is left")
	}
	if want := []string{"gone", "stale"}; !slices.Equal(h.run.stopped, want) {
		t.Errorf("shims stopped %v, want %v", h.run.stopped, want)
	}
	h.svc.watchMu.Lock()
	defer h.svc.watchMu.Unlock()
	if !h.svc.watching[testPod.ID] || len(h.svc.watching) != 1 {
		t.Errorf("watching %v", h.svc.watching)
	}
}

func (h *harness) assertNothingLeftOf(pod, id string) {
	h.t.Helper()
	if dirs, mounts := h.os.left(stateDir + "/containers/" + id); len(dirs)+len(mounts) > 0 {
		h.t.Errorf("%s: left dirs %v, mounts %v", id, dirs, mounts)
	}
	if keys, _ := h.snaps.Keys(); slices.ContainsFunc(keys, func(k string) bool { return snapshotOwner(k) == id }) {
		h.t.Errorf("%s: left snapshots in %v", id, keys)
	}
	if h.run.holds(pod, id) {
		h.t.Errorf("%s: left in the shim", id)
	}
	if _, err := h.store.Get(id); !errdefs.IsNotFound(err) {
		h.t.Errorf("%s: left a record: %v", id, err)
	}
}
