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
type Pool struct {
	bins    Binaries
	dir     string
	mu      sync.Mutex
	clients map[string]*Client
	rt      runtimeServer
}

// NewPool starts shims from bins, with their files under dir.
func NewPool(bins Binaries, dir string) *Pool {
	return &Pool{bins: bins, dir: dir, clients: map[string]*Client{}}
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

// Get returns the pod's shim, starting it if it does not run.
func (p *Pool) Get(ctx context.Context, pod string) (*Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.cached(pod); ok {
		return c, nil
	}
	if c, err := Dial(ctx, p.socket(pod)); err == nil {
		p.clients[pod] = c
		return c, nil
	}
	if err := os.MkdirAll(filepath.Join(p.dir, pod), 0o700); err != nil {
		return nil, err
	}
	if _, err := StartShim(ctx, p.bins, p.socket(pod), p.shimRoot(pod), filepath.Join(p.dir, pod, "shim.log")); err != nil {
		return nil, fmt.Errorf("pod %s: %w", pod, err)
	}
	c, err := Dial(ctx, p.socket(pod))
	if err != nil {
		return nil, err
	}
	p.clients[pod] = c
	return c, nil
}

// Lookup returns the pod's shim if it runs, else ErrNotFound; it starts none.
func (p *Pool) Lookup(ctx context.Context, pod string) (*Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.cached(pod); ok {
		return c, nil
	}
	c, err := Dial(ctx, p.socket(pod))
	if err != nil {
		return nil, fmt.Errorf("shim of pod %s: %w", pod, errdefs.ErrNotFound)
	}
	p.clients[pod] = c
	return c, nil
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
