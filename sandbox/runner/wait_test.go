package runner

import (
	"sync"
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

// AwaitOutput returns once the copies are done, or after the grace when one
// never ends.
func TestAwaitOutput(t *testing.T) {
	var wg sync.WaitGroup
	AwaitOutput(&wg, time.Hour) // nothing to wait for
	wg.Add(1)
	AwaitOutput(&wg, 10*time.Millisecond) // a copy that never ends
	wg.Done()
}
