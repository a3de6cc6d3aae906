package runner

import (
	"sync"
	"time"
)

// OutputGrace is how long a process's output is still read after it exited:
// a child it left behind may hold the pipes open for ever.
const OutputGrace = time.Second

// AwaitOutput waits for the copies of a process's output in wg, at most
// grace.
func AwaitOutput(wg *sync.WaitGroup, grace time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	ClosedWithin(done, grace)
}

// Closed says whether done is closed, without waiting.
func Closed(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// ClosedWithin waits at most timeout for done to be closed. A closed done
// always wins: a select on it and an expired timer picks either at random,
// and a zero timeout ("has it exited?") would then answer no half the time.
func ClosedWithin(done <-chan struct{}, timeout time.Duration) bool {
	if Closed(done) {
		return true
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
