// Package claim keeps the transitional states of Berth's objects: which
// operation is working on a pod or a container (starting it, stopping it,
// removing it), and who waits for that operation to end.
//
// A Gate sits beside each object's record, in memory, under no other lock.
// An operation takes it before its slow work and releases it after it has
// committed the new state; an operation that meets it waits (bounded by its
// context) or fails with a clear code, and never acts on half-made state.
//
//	exclusive  one operation alone (start, remove; a pod's stop or remove)
//	shared     beside others of the shared kind (a container's stops; the
//	           creates and starts that use a pod)
//
// An exclusive claim waiting for its turn holds back new shared ones, so a
// pod's stop is not starved by a stream of creates; TryShare refuses then.
// Gone marks the object deleted: every waiter returns NotFound.
package claim

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
)

// Op names an operation that holds a gate (it shows in errors).
type Op string

// The operations that claim objects.
const (
	Starting Op = "starting"
	Stopping Op = "stopping"
	Removing Op = "removing"
	// Using is a shared claim on a pod by the creates and starts of its
	// containers: the pod stays READY until they are done.
	Using Op = "using"
)

// Gate is the claim on one object. The zero value is free.
type Gate struct {
	mu        sync.Mutex
	exclusive Op  // the exclusive holder, "" if none
	shared    int // how many shared holders
	sharedOp  Op  // what the shared holders do
	waiting   int // exclusive claims waiting for their turn
	waitingOp Op  // the latest of them, for TryShare's error
	sleepers  int // claims of any kind asleep in Take
	changed   chan struct{}
	gone      bool
}

// Take waits until op may hold the gate (alone, or beside other shared
// holders when shared) and takes it. It returns the release, to be called
// once; the context's end while waiting, or the object's deletion, is the
// error.
func (g *Gate) Take(ctx context.Context, op Op, shared bool) (release func(), err error) {
	g.mu.Lock()
	if !shared {
		g.waiting++
		g.waitingOp = op
		defer g.unwait()
	}
	for {
		if g.gone {
			g.mu.Unlock()
			return nil, fmt.Errorf("%s: the object was removed: %w", op, errdefs.ErrNotFound)
		}
		if g.free(shared) {
			return g.hold(op, shared), nil
		}
		ch := g.changedLocked()
		g.sleepers++
		g.mu.Unlock()
		var ended error
		select {
		case <-ch:
		case <-ctx.Done():
			ended = ctx.Err()
		}
		g.mu.Lock()
		g.sleepers--
		if ended != nil {
			busy := g.holderLocked()
			g.mu.Unlock()
			return nil, fmt.Errorf("%s: gave up waiting for %q to end: %w", op, busy, ended)
		}
	}
}

// unwait ends an exclusive claim's wait (taken or given up): the shared
// claims it held back may go.
func (g *Gate) unwait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.waiting--
	if g.waiting == 0 {
		g.waitingOp = ""
		g.wake()
	}
}

// free says whether a claim may be taken now (g.mu held). A shared claim
// waits behind exclusive ones that wait.
func (g *Gate) free(shared bool) bool {
	if g.exclusive != "" {
		return false
	}
	if shared {
		return g.waiting == 0
	}
	return g.shared == 0
}

// hold takes the gate (g.mu held, and unlocked on return) and returns its
// release.
func (g *Gate) hold(op Op, shared bool) func() {
	if shared {
		g.shared++
		g.sharedOp = op
	} else {
		g.exclusive = op
	}
	g.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { g.release(shared) }) }
}

func (g *Gate) release(shared bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if shared {
		g.shared--
		if g.shared == 0 {
			g.sharedOp = ""
		}
	} else {
		g.exclusive = ""
	}
	g.wake()
}

// TryShare takes a shared claim for op at once, or fails with
// FailedPrecondition naming the operation that holds or awaits the gate
// alone.
func (g *Gate) TryShare(op Op) (release func(), err error) {
	g.mu.Lock()
	if g.gone {
		g.mu.Unlock()
		return nil, fmt.Errorf("%s: the object was removed: %w", op, errdefs.ErrNotFound)
	}
	if !g.free(true) {
		busy := g.exclusive
		if busy == "" {
			busy = g.waitingOp
		}
		g.mu.Unlock()
		return nil, fmt.Errorf("it is %s: %w", busy, errdefs.ErrFailedPrecondition)
	}
	return g.hold(op, true), nil
}

// Gone marks the object deleted: its waiters, now and later, get NotFound.
// Holders keep their claims until they release them.
func (g *Gate) Gone() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gone = true
	g.wake()
}

// Busy names the exclusive holder, or the shared holders' operation, or "".
func (g *Gate) Busy() Op {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.holderLocked()
}

func (g *Gate) holderLocked() Op {
	if g.exclusive != "" {
		return g.exclusive
	}
	return g.sharedOp
}

func (g *Gate) changedLocked() chan struct{} {
	if g.changed == nil {
		g.changed = make(chan struct{})
	}
	return g.changed
}

// wake tells the waiters that the gate changed (g.mu held).
func (g *Gate) wake() {
	if g.changed != nil {
		close(g.changed)
		g.changed = nil
	}
}
