package cri

import (
	"context"
	"fmt"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox/container"
)

// newListServer is a server whose store holds n containers over pods of 3,
// a third of them exited.
func newListServer(tb testing.TB, n int) *Server {
	tb.Helper()
	store, err := container.NewStore(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		st := container.Running // Add records CREATED; Update moves it on
		if i%3 == 2 {
			st = container.Exited
		}
		c := container.Container{ID: fmt.Sprintf("%064x", i), PodID: fmt.Sprintf("pod%03d", i/3), Name: fmt.Sprintf("c%d", i%3),
			Image: "busybox", Labels: map[string]string{"app": fmt.Sprintf("a%d", i%10)}, State: st}
		if err := store.Add(c); err != nil {
			tb.Fatal(err)
		}
		if _, err := store.Update(c.ID, func(r *container.Container) error { r.State = st; return nil }); err != nil {
			tb.Fatal(err)
		}
	}
	return New(Options{Containers: container.NewService(container.Options{Store: store})})
}

func TestListContainersFilters(t *testing.T) {
	s := newListServer(t, 30)
	count := func(f *runtime.ContainerFilter) int {
		resp, err := s.ListContainers(context.Background(), &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.Containers)
	}
	for name, tc := range map[string]struct {
		f    *runtime.ContainerFilter
		want int
	}{
		"all":       {nil, 30},
		"id prefix": {&runtime.ContainerFilter{Id: fmt.Sprintf("%063x", 0)}, 16},
		"pod":       {&runtime.ContainerFilter{PodSandboxId: "pod004"}, 3},
		"state":     {&runtime.ContainerFilter{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}}, 10},
		"labels":    {&runtime.ContainerFilter{LabelSelector: map[string]string{"app": "a1"}}, 3},
		"none":      {&runtime.ContainerFilter{LabelSelector: map[string]string{"app": "zz"}}, 0},
	} {
		if got := count(tc.f); got != tc.want {
			t.Errorf("%s: %d containers, want %d", name, got, tc.want)
		}
	}
}

// The kubelet relists every second: 300 containers in 100 pods, from memory.
func BenchmarkListContainers300(b *testing.B) {
	s := newListServer(b, 300)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		if _, err := s.ListContainers(ctx, &runtime.ListContainersRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkContainerStatus(b *testing.B) {
	s := newListServer(b, 300)
	ctx := context.Background()
	id := fmt.Sprintf("%064x", 150)
	b.ResetTimer()
	for range b.N {
		if _, err := s.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id}); err != nil {
			b.Fatal(err)
		}
	}
}
