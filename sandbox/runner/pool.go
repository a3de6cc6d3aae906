package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/containerd/errdefs"
)

// Pool keeps one shim per pod: <dir>/<pod>/shim.sock, its libcontainer state
// in <dir>/<pod>/shim-state and its log in <dir>/<pod>/shim.log. A shim that
// berthd started before a restart is found again by its socket. The pool's
// runtime server (runtime.go) answers ExecSync: <dir>/runtime.sock.
//
// Its lock guards only its maps: a shim starting (up to its ready timeout)
// holds up the calls for its own pod, no other.
type Pool struct {
	bins    Binaries
	dir     string
	mu      sync.Mutex
	clients map[string]*Client
	// starting are the shim starts in flight, by pod.
	starting map[string]*shimStart
	rt       runtimeServer
}

// shimStart is a shim start in flight; done closes when it has ended.
type shimStart struct {
	done chan struct{}
	err  error
}

// NewPool starts shims from bins, with their files under dir.
func NewPool(bins Binaries, dir string) *Pool {
	return &Pool{bins: bins, dir: dir, clients: map[string]*Client{}, starting: map[string]*shimStart{}}
}

func (p *Pool) socket(pod string) string { return filepath.Join(p.dir, pod, "shim.sock") }

// shimRoot is the pod's shim's state: libcontainer's and the exit records.
func (p *Pool) shimRoot(pod string) string { return filepath.Join(p.dir, pod, "shim-state") }

// cached returns the pod's live client, dropping a dead one; p.mu is held.
func (p *Pool) cached(pod string) (*Client, bool) {
	c, ok := p.clients[pod]
	if ok && c.Dead() {
		c.Close()
		delete(p.clients, pod)
		return nil, false
	}
	return c, ok
}

// await waits out the starts of the pod's shim in flight; it returns the
// pod's live client, if any, and the last start it waited for, if any.
func (p *Pool) await(ctx context.Context, pod string) (*Client, *shimStart, error) {
	var last *shimStart
	for {
		p.mu.Lock()
		c, ok := p.cached(pod)
		s, starting := p.starting[pod]
		p.mu.Unlock()
		if ok || !starting {
			return c, last, nil
		}
		select {
		case <-s.done:
			last = s
		case <-ctx.Done():
			return nil, last, ctx.Err()
		}
	}
}

// keep caches c as the pod's client, unless a live one was cached
// meanwhile: then c is closed and that one is returned.
func (p *Pool) keep(pod string, c *Client) *Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.cached(pod); ok {
		c.Close()
		return old
	}
	p.clients[pod] = c
	return c
}

// Get returns the pod's shim, starting it if it does not run. Calls for
// the same pod share one start and its outcome, unless its caller gave up
// (its context ended): then a call that waited starts the shim itself.
func (p *Pool) Get(ctx context.Context, pod string) (*Client, error) {
	for {
		c, last, err := p.await(ctx, pod)
		if c != nil || err != nil {
			return c, err
		}
		if last != nil && last.err != nil && !isContextError(last.err) {
			return nil, last.err
		}
		p.mu.Lock()
		if _, busy := p.starting[pod]; busy {
			p.mu.Unlock() // another call began a start: wait for it
			continue
		}
		s := &shimStart{done: make(chan struct{})}
		p.starting[pod] = s
		p.mu.Unlock()
		c, s.err = p.connect(ctx, pod)
		if s.err == nil {
			c = p.keep(pod, c)
		}
		p.mu.Lock()
		delete(p.starting, pod)
		p.mu.Unlock()
		close(s.done)
		return c, s.err
	}
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// connect dials the pod's shim, starting it first if it does not answer.
func (p *Pool) connect(ctx context.Context, pod string) (*Client, error) {
	if c, err := Dial(ctx, p.socket(pod)); err == nil {
		return c, nil
	}
	if err := os.MkdirAll(filepath.Join(p.dir, pod), 0o700); err != nil {
		return nil, err
	}
	if _, err := StartShim(ctx, p.bins, p.socket(pod), p.shimRoot(pod), filepath.Join(p.dir, pod, "shim.log")); err != nil {
		return nil, fmt.Errorf("pod %s: %w", pod, err)
	}
	return Dial(ctx, p.socket(pod))
}

// Lookup returns the pod's shim if it runs, else ErrNotFound; it starts none
// (a start in flight is waited for).
func (p *Pool) Lookup(ctx context.Context, pod string) (*Client, error) {
	c, _, err := p.await(ctx, pod)
	if c != nil || err != nil {
		return c, err
	}
	c, err = Dial(ctx, p.socket(pod))
	if err != nil {
		return nil, fmt.Errorf("shim of pod %s: %w", pod, errdefs.ErrNotFound)
	}
	return p.keep(pod, c), nil
}

// Stop shuts the pod's shim down (it refuses while containers remain) and
// removes its files. A pod without a shim is fine.
func (p *Pool) Stop(ctx context.Context, pod string) error {
	c, err := p.Lookup(ctx, pod)
	if errdefs.IsNotFound(err) {
		return os.RemoveAll(filepath.Join(p.dir, pod))
	}
	if err != nil {
		return err
	}
	if err := c.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	p.mu.Lock()
	delete(p.clients, pod)
	p.mu.Unlock()
	c.Close()
	return os.RemoveAll(filepath.Join(p.dir, pod))
}

// RecordedExit is the exit the pod's shim recorded for container id before
// reporting it; it outlives the shim.
func (p *Pool) RecordedExit(pod, id string) (Exit, error) {
	return ReadExit(p.shimRoot(pod), id)
}

// Pods lists the pods that have shim files (a running shim, or what a dead
// one left).
func (p *Pool) Pods() []string {
	entries, _ := os.ReadDir(p.dir)
	var pods []string
	for _, e := range entries {
		if e.IsDir() {
			pods = append(pods, e.Name())
		}
	}
	return pods
}
