package runner

import (
	"sync"
	"time"
)

// OutputGrace is how long a process's output is still read after it exited:
// a child it left behind may hold the pipes open for ever.
const OutputGrace = time.Second

// AwaitOutput waits for the copies of a process's output in wg, at most
// OutputGrace.
func AwaitOutput(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(OutputGrace):
	}
}
