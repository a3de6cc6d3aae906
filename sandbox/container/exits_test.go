package container

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/test/wait"
)

// A container that exits as it starts is told started, then stopped, never
// the other way round: the store holds a change's order lock until its
// notification is out.
func TestChangesNotifiedInOrder(t *testing.T) {
	h := newHarness(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var got []State
	h.store.SetNotify(func(ch Change) {
		if ch.Container.State == Running {
			close(entered)
			<-release
		}
		got = append(got, ch.Container.State) // ordered by the lock
	})
	if err := h.store.Add(Container{ID: "c1", PodID: "p1", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	started := make(chan error)
	go func() { // StartContainer's change
		_, err := h.store.Update("c1", func(c *Container) error { c.State = Running; return nil })
		started <- err
	}()
	<-entered // RUNNING is recorded, its notification not yet out
	exited := make(chan struct{})
	go func() { // the exit watcher's change
		h.svc.recordExit(context.Background(), "c1", runner.Exit{Code: 0, At: time.Now()}, "")
		close(exited)
	}()
	// Without the order, the exit is recorded and told meanwhile; with it,
	// it waits for the start's notification. This wait only gives the first
	// case its chance: the test passes either way when the order holds.
	select {
	case <-exited:
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	<-exited
	if want := []State{Created, Running, Exited}; !slices.Equal(got, want) {
		t.Fatalf("told %v, want %v", got, want)
	}
}

// An exit and its explanation are one change: a status read or an event in
// between showed a killed shim's container as exited for no stated reason.
func TestExitAndMessageAreOneChange(t *testing.T) {
	h := newHarness(t)
	var exits []Container
	h.store.SetNotify(func(ch Change) {
		if ch.Container.State == Exited {
			exits = append(exits, ch.Container)
		}
	})
	if err := h.store.Add(Container{ID: "c1", PodID: "p1", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	const why = "berth-shim of the pod exited; the container was killed"
	h.svc.recordExit(context.Background(), "c1", runner.Exit{Code: 137, Reason: "Error", At: time.Now()}, why)
	if len(exits) != 1 || exits[0].Message != why || exits[0].ExitCode != 137 {
		t.Fatalf("exit changes %+v, want one with code 137 and the message", exits)
	}
}

// The pod's watcher records what the shim reports.
func TestWatcherRecordsExits(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.run.exit(testPod.ID, "c1", 3)
	wait.Until(t, "the exit recorded", func() bool { return h.get("c1").State == Exited })
	if c := h.get("c1"); c.ExitCode != 3 || c.Reason != "Error" {
		t.Fatalf("recorded %+v", c)
	}
}

// When the shim dies, a container whose exit it recorded gets that exit;
// one it recorded nothing for has its cgroup killed and is reported killed.
func TestShimGoneSettlesContainers(t *testing.T) {
	h := newHarness(t)
	h.started("c1")
	h.started("c2")
	h.run.mu.Lock()
	h.run.recorded[testPod.ID+"/c1"] = runner.Exit{Code: 0, Reason: "Completed", At: time.Now().UTC()}
	h.run.mu.Unlock()
	h.run.kill(testPod.ID)
	wait.Until(t, "both settled", func() bool { return h.get("c1").State == Exited && h.get("c2").State == Exited })
	if c := h.get("c1"); c.ExitCode != 0 || c.Reason != "Completed" || c.Message != "" {
		t.Errorf("c1 %+v", c)
	}
	if c := h.get("c2"); c.ExitCode != 137 || c.Message != "berth-shim of the pod exited; the container was killed" {
		t.Errorf("c2 %+v", c)
	}
	h.os.mu.Lock()
	defer h.os.mu.Unlock()
	if want := []string{"/kubepods/pod1/c2"}; !slices.Equal(h.os.killed, want) {
		t.Errorf("killed %v, want %v", h.os.killed, want)
	}
}
