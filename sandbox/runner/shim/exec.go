package shim

import (
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// outputGrace is how long output is still read after the process exited:
// a child it left behind may hold the pipes open for ever.
const outputGrace = time.Second

// execProcess is the init's process (user, env, working dir, labels) with
// args instead, on no terminal.
func execProcess(init *specs.Process, args []string) *specs.Process {
	p := *init
	p.Args, p.Terminal, p.ConsoleSize = args, false, nil
	return &p
}

// waitTimeout waits for wg, at most d; it says whether wg finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
