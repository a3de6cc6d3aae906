package sandbox

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/test/wait"
)

// A stop claims the pod alone: it waits for the creates that use the pod,
// refuses new ones meanwhile, and a pod that is not READY refuses them too.
func TestStopClaimWaitsForUses(t *testing.T) {
	m, _, _ := newTestManager(t, newFakeOS())
	ctx := context.Background()
	if _, err := m.Create(ctx, "pod1", testSpec()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Use("pod1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("use of a pod being created: %v, want FailedPrecondition", err)
	}
	if err := m.MarkReady("pod1"); err != nil {
		t.Fatal(err)
	}
	p, release, err := m.Use("pod1")
	if err != nil || p.State != Ready {
		t.Fatalf("use of a ready pod: %v, %v", p, err)
	}
	stopped := make(chan error, 1)
	go func() {
		_, done, err := m.Claim(ctx, "pod1", claim.Stopping)
		if err == nil {
			err = m.Stop(ctx, "pod1")
			done()
		}
		stopped <- err
	}()
	wait.Until(t, "the stop to wait for the use", func() bool {
		_, r, err := m.Use("pod1")
		if err == nil {
			r()
		}
		return errdefs.IsFailedPrecondition(err)
	})
	select {
	case err := <-stopped:
		t.Fatalf("the stop went ahead (%v) while a create used the pod", err)
	default:
	}
	release()
	if err := wait.Receive(t, "the stop", stopped); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.Use("pod1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("use of a stopped pod: %v, want FailedPrecondition", err)
	}
}

// A removal wakes what waits for the pod with NotFound.
func TestRemovedPodEndsItsWaiters(t *testing.T) {
	m, _, _ := newTestManager(t, newFakeOS())
	ctx := context.Background()
	if _, err := m.Create(ctx, "pod1", testSpec()); err != nil {
		t.Fatal(err)
	}
	_, done, err := m.Claim(ctx, "pod1", claim.Removing)
	if err != nil {
		t.Fatal(err)
	}
	waiter := make(chan error, 1)
	go func() {
		_, d, err := m.Claim(ctx, "pod1", claim.Stopping)
		if err == nil {
			d()
		}
		waiter <- err
	}()
	if err := m.Remove(ctx, "pod1"); err != nil {
		t.Fatal(err)
	}
	done()
	if err := wait.Receive(t, "the stop", waiter); !errdefs.IsNotFound(err) {
		t.Fatalf("a stop that waited for the removal: %v, want NotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := m.Claim(cctx, "pod1", claim.Stopping); !errdefs.IsNotFound(err) || errors.Is(err, context.Canceled) {
		t.Fatalf("a claim of a removed pod: %v, want NotFound", err)
	}
}
