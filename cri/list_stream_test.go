package cri

import (
	"context"
	"testing"

	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sentStream collects what a server stream sends.
type sentStream[T any] struct {
	grpc.ServerStream
	sent []*T
}

func (f *sentStream[T]) Send(m *T) error          { f.sent = append(f.sent, m); return nil }
func (f *sentStream[T]) Context() context.Context { return context.Background() }

func TestStreamContainersSendsEachOnceInChunks(t *testing.T) {
	s := newListServer(t, 250)
	stream := &sentStream[runtime.StreamContainersResponse]{}
	if err := s.StreamContainers(&runtime.StreamContainersRequest{}, stream); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var sizes []int
	for _, m := range stream.sent {
		sizes = append(sizes, len(m.Containers))
		for _, c := range m.Containers {
			if seen[c.Id] {
				t.Fatalf("container %s sent twice", c.Id)
			}
			seen[c.Id] = true
		}
	}
	if len(seen) != 250 || len(sizes) != 3 || sizes[0] != streamChunk || sizes[2] != 50 {
		t.Fatalf("sent %d containers in chunks %v", len(seen), sizes)
	}
	// A filter applies as in ListContainers.
	stream = &sentStream[runtime.StreamContainersResponse]{}
	f := &runtime.ContainerFilter{PodSandboxId: "pod004"}
	if err := s.StreamContainers(&runtime.StreamContainersRequest{Filter: f}, stream); err != nil || len(stream.sent) != 1 || len(stream.sent[0].Containers) != 3 {
		t.Fatalf("filtered stream: %v, %v", stream.sent, err)
	}
}
