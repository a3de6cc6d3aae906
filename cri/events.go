package cri

import (
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
)

// eventQueue is how far a subscriber may fall behind before it is dropped
// (it is told, and relists); changes wait in a queue as long to be turned
// into events. The runtime never waits for a subscriber.
const eventQueue = 1024

// eventHub turns container changes into CRI container events, in order, for
// GetContainerEvents subscribers. With none, a change costs a lock.
type eventHub struct {
	mu      sync.Mutex
	subs    map[*eventSub]bool
	changes chan container.Change
	start   sync.Once
}

type eventSub struct {
	ch chan *runtime.ContainerEventResponse
}

func newEventHub() *eventHub {
	return &eventHub{subs: map[*eventSub]bool{}, changes: make(chan container.Change, eventQueue)}
}

// changed queues a recorded change (the container store's notify hook).
func (h *eventHub) changed(ch container.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		return
	}
	select {
	case h.changes <- ch:
	default: // events are being lost: every subscriber must relist
		h.dropAll()
	}
}

func (h *eventHub) subscribe(run func()) *eventSub {
	h.start.Do(func() { go run() })
	s := &eventSub{ch: make(chan *runtime.ContainerEventResponse, eventQueue)}
	h.mu.Lock()
	h.subs[s] = true
	h.mu.Unlock()
	return s
}

func (h *eventHub) unsubscribe(s *eventSub) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[s] {
		delete(h.subs, s)
		close(s.ch)
	}
}

func (h *eventHub) publish(ev *runtime.ContainerEventResponse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default: // behind: dropped, and told so when it reads its closed channel
			delete(h.subs, s)
			close(s.ch)
		}
	}
}

func (h *eventHub) dropAll() {
	for s := range h.subs {
		delete(h.subs, s)
		close(s.ch)
	}
}

// dispatch turns queued changes into events, until the server closes.
func (s *Server) dispatchEvents() {
	for {
		select {
		case ch := <-s.events.changes:
			s.events.publish(s.containerEvent(ch))
		case <-s.bg.Done():
			return
		}
	}
}

var eventTypes = map[container.State]runtime.ContainerEventType{
	container.Created: runtime.ContainerEventType_CONTAINER_CREATED_EVENT,
	container.Running: runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
	container.Exited:  runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
	container.Unknown: runtime.ContainerEventType_CONTAINER_STOPPED_EVENT,
}

// containerEvent is a change as the kubelet's evented PLEG reads it: the
// event, the pod's status and the statuses of its containers now.
func (s *Server) containerEvent(ch container.Change) *runtime.ContainerEventResponse {
	c := ch.Container
	ev := &runtime.ContainerEventResponse{ContainerId: c.ID, ContainerEventType: eventTypes[c.State], CreatedAt: time.Now().UnixNano()}
	if ch.Deleted {
		ev.ContainerEventType = runtime.ContainerEventType_CONTAINER_DELETED_EVENT
	}
	ctx := s.bg
	if st, err := s.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: c.PodID}); err == nil {
		ev.PodSandboxStatus = st.Status
	}
	for _, other := range s.containers.List(func(o *container.Container) bool { return o.PodID == c.PodID }) {
		if st, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: other.ID}); err == nil {
			ev.ContainersStatuses = append(ev.ContainersStatuses, st.Status)
		}
	}
	return ev
}

// GetContainerEvents streams container events (created, started, stopped,
// deleted) with the pod's and its containers' statuses, in order, to each
// subscriber. A subscriber that falls eventQueue events behind is dropped
// with ResourceExhausted: it must relist.
func (s *Server) GetContainerEvents(_ *runtime.GetEventsRequest, stream grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	sub := s.events.subscribe(s.dispatchEvents)
	defer s.events.unsubscribe(sub)
	// The headers tell the client it is subscribed: events from now on
	// reach it.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-sub.ch:
			if !ok {
				return fmt.Errorf("the subscriber fell %d events behind and was dropped; relist: %w", eventQueue, errdefs.ErrResourceExhausted)
			}
			if err := stream.Send(ev); err != nil {
				return err
			}
		case <-stream.Context().Done():
			log.G(stream.Context()).Debug("container event subscriber left")
			return nil
		case <-s.bg.Done():
			return fmt.Errorf("berthd is stopping: %w", errdefs.ErrUnavailable)
		}
	}
}
