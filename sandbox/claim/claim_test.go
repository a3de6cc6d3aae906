package claim

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-cri/berth/test/wait"
)

// taken is a Take running in the background; its result comes on done.
type taken struct {
	release func()
	err     error
}

func takeLater(g *Gate, ctx context.Context, op Op, shared bool) <-chan taken {
	done := make(chan taken, 1)
	go func() {
		r, err := g.Take(ctx, op, shared)
		done <- taken{r, err}
	}()
	return done
}

func (g *Gate) asleep() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sleepers
}

func mustTake(t *testing.T, g *Gate, op Op, shared bool) func() {
	t.Helper()
	r, err := g.Take(context.Background(), op, shared)
	if err != nil {
		t.Fatalf("take %s: %v", op, err)
	}
	return r
}

func notYet(t *testing.T, what string, ch <-chan taken) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s went ahead (err %v) while the gate was held", what, r.err)
	default:
	}
}

func TestExclusiveWaitsForTheHolder(t *testing.T) {
	var g Gate
	release := mustTake(t, &g, Starting, false)
	later := takeLater(&g, context.Background(), Removing, false)
	wait.Until(t, "the remove to wait", func() bool { return g.asleep() == 1 })
	notYet(t, "the remove", later)
	if g.Busy() != Starting {
		t.Fatalf("busy %q, want %q", g.Busy(), Starting)
	}
	release()
	r := wait.Receive(t, "the remove", later)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if g.Busy() != Removing {
		t.Fatalf("busy %q, want %q", g.Busy(), Removing)
	}
	r.release()
	if g.Busy() != "" {
		t.Fatalf("busy %q after every release", g.Busy())
	}
}

func TestSharedClaimsGoTogether(t *testing.T) {
	var g Gate
	a := mustTake(t, &g, Stopping, true)
	b := mustTake(t, &g, Stopping, true)
	c, err := g.TryShare(Stopping)
	if err != nil {
		t.Fatalf("a third shared claim: %v", err)
	}
	later := takeLater(&g, context.Background(), Removing, false)
	wait.Until(t, "the remove to wait", func() bool { return g.asleep() == 1 })
	for _, r := range []func(){a, b} {
		r()
		notYet(t, "the remove", later)
	}
	c()
	r := wait.Receive(t, "the remove", later)
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.release()
}

// An exclusive claim that waits holds back new shared ones: a pod's stop is
// not starved by creates that keep coming.
func TestWaitingExclusiveHoldsBackShared(t *testing.T) {
	var g Gate
	use := mustTake(t, &g, Using, true)
	stop := takeLater(&g, context.Background(), Stopping, false)
	wait.Until(t, "the stop to wait", func() bool { return g.asleep() == 1 })
	_, err := g.TryShare(Using)
	if !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("a new use while the stop waits: %v, want FailedPrecondition", err)
	}
	if !strings.HasPrefix(err.Error(), "it is stopping") {
		t.Fatalf("the error %q does not name the stop", err)
	}
	shared := takeLater(&g, context.Background(), Using, true)
	wait.Until(t, "the shared take to wait", func() bool { return g.asleep() == 2 })
	use()
	r := wait.Receive(t, "the stop", stop)
	if r.err != nil {
		t.Fatal(r.err)
	}
	notYet(t, "the shared take", shared)
	r.release()
	s := wait.Receive(t, "the shared take", shared)
	if s.err != nil {
		t.Fatal(s.err)
	}
	s.release()
}

func TestGivingUpLetsOthersGo(t *testing.T) {
	var g Gate
	use := mustTake(t, &g, Using, true)
	ctx, cancel := context.WithCancel(context.Background())
	stop := takeLater(&g, ctx, Stopping, false)
	wait.Until(t, "the stop to wait", func() bool { return g.asleep() == 1 })
	cancel()
	r := wait.Receive(t, "the stop to give up", stop)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("the stop's error %v, want context.Canceled", r.err)
	}
	again, err := g.TryShare(Using)
	if err != nil {
		t.Fatalf("a use once the stop gave up: %v", err)
	}
	again()
	use()
	mustTake(t, &g, Removing, false)()
}

func TestGoneWakesTheWaiters(t *testing.T) {
	var g Gate
	remove := mustTake(t, &g, Removing, false)
	start := takeLater(&g, context.Background(), Starting, false)
	stop := takeLater(&g, context.Background(), Stopping, true)
	wait.Until(t, "both to wait", func() bool { return g.asleep() == 2 })
	g.Gone()
	remove()
	for _, ch := range []<-chan taken{start, stop} {
		if r := wait.Receive(t, "a waiter", ch); !errdefs.IsNotFound(r.err) {
			t.Fatalf("a waiter of a removed object: %v, want NotFound", r.err)
		}
	}
	if _, err := g.Take(context.Background(), Stopping, true); !errdefs.IsNotFound(err) {
		t.Fatalf("a take after Gone: %v, want NotFound", err)
	}
	if _, err := g.TryShare(Using); !errdefs.IsNotFound(err) {
		t.Fatalf("a TryShare after Gone: %v, want NotFound", err)
	}
}

func TestReleaseTwiceIsHarmless(t *testing.T) {
	var g Gate
	a := mustTake(t, &g, Stopping, true)
	b := mustTake(t, &g, Stopping, true)
	a()
	a()
	later := takeLater(&g, context.Background(), Removing, false)
	wait.Until(t, "the remove to wait", func() bool { return g.asleep() == 1 })
	notYet(t, "the remove (one shared claim is still held)", later)
	b()
	r := wait.Receive(t, "the remove", later)
	if r.err != nil {
		t.Fatal(r.err)
	}
	r.release()
}

// Many goroutines take, try and give up claims at random: an exclusive
// holder is always alone, and every call ends.
func TestManyClaimants(t *testing.T) {
	var g Gate
	var exclusive, shared atomic.Int32
	check := func() {
		if e, s := exclusive.Load(), shared.Load(); e > 1 || (e == 1 && s > 0) {
			t.Errorf("%d exclusive and %d shared holders at once", e, s)
		}
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for range 200 {
				claimOnce(&g, rng, &exclusive, &shared, check)
			}
		}()
	}
	wait.Within(t, "every claimant", func() error { wg.Wait(); return nil })
	if g.Busy() != "" || g.asleep() != 0 {
		t.Fatalf("left held: busy %q, %d asleep", g.Busy(), g.asleep())
	}
}

func claimOnce(g *Gate, rng *rand.Rand, exclusive, shared *atomic.Int32, check func()) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if rng.IntN(4) == 0 {
		cancel() // gives up at once if it has to wait
	}
	var release func()
	var err error
	isShared := rng.IntN(2) == 0
	switch {
	case isShared && rng.IntN(2) == 0:
		release, err = g.TryShare(Using)
	default:
		release, err = g.Take(ctx, Stopping, isShared)
	}
	if err != nil {
		return
	}
	counter := exclusive
	if isShared {
		counter = shared
	}
	counter.Add(1)
	check()
	counter.Add(-1)
	release()
}
