package runner

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A closed channel is reported closed even with no time to wait: Wait(id, 0)
// is how berthd asks the shim whether a container has exited.
func TestClosedWithin(t *testing.T) {
	done := make(chan struct{})
	if Closed(done) || ClosedWithin(done, 0) || ClosedWithin(done, time.Millisecond) {
		t.Fatal("an open channel reported closed")
	}
	close(done)
	for i := 0; i < 1000; i++ {
		if !Closed(done) || !ClosedWithin(done, 0) {
			t.Fatalf("a closed channel reported open (try %d)", i)
		}
	}
}

// AwaitOutput returns once the copies are done, and not before: whenever it
// returns, released (set just before wg.Done) must already be set. The grace
// is long enough never to end the wait, so no timing decides the outcome.
func TestAwaitOutputWaitsForTheCopies(t *testing.T) {
	var wg sync.WaitGroup
	AwaitOutput(&wg, time.Hour) // nothing to wait for: returns at once

	wg.Add(1)
	var released atomic.Bool
	entering, returned := make(chan struct{}), make(chan bool)
	go func() {
		close(entering)
		AwaitOutput(&wg, time.Hour)
		returned <- released.Load()
	}()
	<-entering
	runtime.Gosched() // lets an AwaitOutput that does not wait return now
	released.Store(true)
	wg.Done()
	if !<-returned {
		t.Fatal("AwaitOutput returned before the copies were done")
	}
}

// A copy that never ends (a leftover child holds the pipe) is given up after
// the grace: with no grace AwaitOutput returns although wg is never done.
func TestAwaitOutputGivesUpAfterTheGrace(t *testing.T) {
	var wg sync.WaitGroup
	wg.Add(1)
	defer wg.Done() // ends the watcher goroutine AwaitOutput leaves
	AwaitOutput(&wg, 0)
	AwaitOutput(&wg, time.Millisecond)
}
