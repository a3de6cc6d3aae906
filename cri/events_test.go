package cri

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/sandbox/container"
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

// The container domain's recorded changes reach the event hub (their order
// is the store's: sandbox/container TestChangesNotifiedInOrder).
func TestContainerChangesAreQueued(t *testing.T) {
	st, err := container.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Config: config.Default(), Containers: container.NewService(container.Options{Store: st})})
	defer s.Close()
	s.events.subscribe(func() {}) // changes are queued, not dispatched
	if err := st.Add(container.Container{ID: "c1", PodID: "p1", Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if ch := <-s.events.changes; ch.Container.ID != "c1" || ch.Container.State != container.Created {
		t.Fatalf("queued %+v", ch)
	}
}
