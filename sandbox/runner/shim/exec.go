package shim

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
)

// ExecResult is what an exec'd process wrote and how it ended.
type ExecResult struct {
	Stdout, Stderr []byte
	ExitCode       int
	TimedOut       bool
}

// outputGrace is how long output is still read after the process exited:
// a child it left behind may hold the pipes open for ever.
const outputGrace = time.Second

// Exec runs args in the running container id, as its init's user, env and
// working dir, and returns its output, each stream capped at limit bytes (the
// rest is read and dropped). When timeout passes first, the process is killed
// and reaped and TimedOut is set.
func (cs *Containers) Exec(id string, args []string, timeout time.Duration, limit int) (ExecResult, error) {
	c, err := cs.running(id)
	if err != nil {
		return ExecResult{}, err
	}
	if len(args) == 0 {
		return ExecResult{}, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	sp := *c.spec
	sp.Args = args
	p, streams, err := newProcess(&sp, false, false)
	if err != nil {
		return ExecResult{}, err
	}
	p.Init = false
	pid, err := cs.run(c.c, p)
	if err != nil {
		streams.close()
		return ExecResult{}, fmt.Errorf("exec in %s: %w", id, err)
	}
	defer cs.forgetExec(pid)
	streams.closeChildEnds()
	stdout, stderr := &cappedBuffer{limit: limit}, &cappedBuffer{limit: limit}
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); _, _ = io.Copy(stdout, streams.stdout) }()
	go func() { defer copying.Done(); _, _ = io.Copy(stderr, streams.stderr) }()
	res := waitExec(p, timeout)
	waitTimeout(&copying, outputGrace)
	streams.stdout.Close() // ends copies a leftover child keeps going
	streams.stderr.Close()
	copying.Wait()
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	return res, nil
}

// run starts a non-init process and registers its pid, both under startMu,
// so that the orphan reaper never takes it.
func (cs *Containers) run(c *libcontainer.Container, p *libcontainer.Process) (int, error) {
	cs.startMu.Lock()
	defer cs.startMu.Unlock()
	if err := c.Run(p); err != nil {
		return 0, err
	}
	pid, err := p.Pid()
	if err != nil {
		return 0, err
	}
	cs.mu.Lock()
	cs.execs[pid] = true
	cs.mu.Unlock()
	return pid, nil
}

func (cs *Containers) forgetExec(pid int) {
	cs.mu.Lock()
	delete(cs.execs, pid)
	cs.mu.Unlock()
}

// waitExec waits for p, killing it when timeout (if > 0) passes first.
func waitExec(p *libcontainer.Process, timeout time.Duration) ExecResult {
	done := make(chan Exit, 1)
	go func() { done <- processExit(p.Wait()) }()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case e := <-done:
		return ExecResult{ExitCode: e.Code}
	case <-expired:
		_ = p.Signal(syscall.SIGKILL)
		e := <-done
		return ExecResult{ExitCode: e.Code, TimedOut: true}
	}
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

// cappedBuffer keeps the first limit bytes written to it and drops the rest.
type cappedBuffer struct {
	limit int
	buf   bytes.Buffer
	mu    sync.Mutex
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

var _ io.Writer = (*cappedBuffer)(nil)
