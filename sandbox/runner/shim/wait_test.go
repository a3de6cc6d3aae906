package shim

import (
	"testing"
	"time"
)

// A closed channel is reported closed even with no time to wait: Wait(id, 0)
// is how berthd asks whether a container has exited.
func TestClosedWithin(t *testing.T) {
	done := make(chan struct{})
	if closedWithin(done, 0) || closedWithin(done, time.Millisecond) {
		t.Fatal("an open channel reported closed")
	}
	close(done)
	for i := 0; i < 1000; i++ {
		if !closedWithin(done, 0) {
			t.Fatalf("a closed channel reported open (try %d)", i)
		}
	}
}
