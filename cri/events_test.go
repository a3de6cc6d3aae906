package cri

import (
	"context"
	"slices"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
)

func TestEventHubDropsASlowSubscriber(t *testing.T) {
	h := newEventHub()
	h.changed(container.Change{})
	if len(h.changes) != 0 {
		t.Fatal("a change was queued with no subscriber")
	}
	slow, fast := h.subscribe(func() {}), h.subscribe(func() {})
	for i := range eventQueue + 1 {
		h.publish(&runtime.ContainerEventResponse{ContainerId: string(rune('a' + i%26))})
		if i < eventQueue {
			<-fast.ch // keeps up
		}
	}
	n := 0
	for range slow.ch { // closed after what fitted
		n++
	}
	if n != eventQueue {
		t.Fatalf("the slow subscriber got %d events before it was dropped, want %d", n, eventQueue)
	}
	if ev := <-fast.ch; ev == nil {
		t.Fatal("the subscriber that kept up lost the last event")
	}
	h.unsubscribe(slow) // already dropped: no double close
	h.unsubscribe(fast)
	if _, ok := <-fast.ch; ok {
		t.Fatal("unsubscribe left the channel open")
	}
}

// slowNotify is a container store whose notifications of RUNNING wait for
// the test: the window between a recorded change and its event, widened.
type slowNotify struct {
	*container.Store
	entered, release chan struct{}
}

func (s *slowNotify) SetNotify(fn func(container.Change)) {
	s.Store.SetNotify(func(ch container.Change) {
		if ch.Container.State == container.Running {
			close(s.entered)
			<-s.release
		}
		fn(ch)
	})
}

// A container that exits as it starts is reported started, then stopped,
// never the other way round.
func TestContainerEventsInOrder(t *testing.T) {
	st, err := container.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	slow := &slowNotify{Store: st, entered: make(chan struct{}), release: make(chan struct{})}
	s := New(Options{Config: config.Default(), Containers: slow})
	defer s.Close()
	s.events.subscribe(func() {}) // changes are queued, not dispatched
	if err := s.addContainer(container.Container{ID: "c1", PodID: "p1", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	started := make(chan error)
	go func() { // StartContainer's change
		_, err := s.updateContainer("c1", func(c *container.Container) error {
			c.State = container.Running
			return nil
		})
		started <- err
	}()
	<-slow.entered // RUNNING is recorded, its event not yet queued
	exited := make(chan struct{})
	go func() { // the exit watcher's change
		s.recordExit(context.Background(), "c1", runner.Exit{Code: 0, At: time.Now()}, "")
		close(exited)
	}()
	// Without the order, the exit is recorded and queued meanwhile; with
	// it, it waits for the start's event. This wait only gives the first
	// case its chance: the test passes either way when the order holds.
	select {
	case <-exited:
	case <-time.After(200 * time.Millisecond):
	}
	close(slow.release)
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	<-exited
	var got []container.State
	for len(s.events.changes) > 0 {
		got = append(got, (<-s.events.changes).Container.State)
	}
	want := []container.State{container.Created, container.Running, container.Exited}
	if !slices.Equal(got, want) {
		t.Fatalf("changes queued as %v, want %v", got, want)
	}
}

// An exit and its explanation are one change: a status read or an event in
// between showed a killed shim's container as exited for no stated reason.
func TestExitAndMessageAreOneChange(t *testing.T) {
	st, err := container.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Config: config.Default(), Containers: st})
	defer s.Close()
	s.events.subscribe(func() {}) // changes are queued, not dispatched
	if err := s.addContainer(container.Container{ID: "c1", PodID: "p1", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	const why = "berth-shim of the pod exited; the container was killed"
	s.recordExit(context.Background(), "c1", runner.Exit{Code: 137, Reason: "Error", At: time.Now()}, why)
	var exits []container.Container
	for len(s.events.changes) > 0 {
		if ch := <-s.events.changes; ch.Container.State == container.Exited {
			exits = append(exits, ch.Container)
		}
	}
	if len(exits) != 1 || exits[0].Message != why || exits[0].ExitCode != 137 {
		t.Fatalf("exit changes %+v, want one with code 137 and the message", exits)
	}
}
