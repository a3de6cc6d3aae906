package images

import (
	"context"
	"sync"
)

// pullGroup makes concurrent pulls of the same reference share one download.
// The shared pull runs on its own context, cancelled only when every caller
// waiting for it has given up: one impatient kubelet retry must not cancel a
// pull that another caller still waits for.
type pullGroup struct {
	mu    sync.Mutex
	calls map[string]*pullCall
}

type pullCall struct {
	done    chan struct{}
	img     *Image
	err     error
	waiters int
	cancel  context.CancelFunc
}

// do runs fn once per key at a time and returns its result to every caller.
// A caller whose ctx ends stops waiting and gets ctx's error.
func (g *pullGroup) do(ctx context.Context, key string, fn func(context.Context) (*Image, error)) (*Image, error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*pullCall{}
	}
	c, ok := g.calls[key]
	if !ok {
		// The pull keeps the first caller's values (logger) but not its
		// cancellation, which is managed through waiters.
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &pullCall{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(pctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		g.leave(c)
		return c.img, c.err
	case <-ctx.Done():
		g.leave(c)
		return nil, ctx.Err()
	}
}

func (g *pullGroup) run(ctx context.Context, key string, c *pullCall, fn func(context.Context) (*Image, error)) {
	c.img, c.err = fn(ctx)
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
	c.cancel()
	close(c.done)
}

// leave drops a waiter; the last one to leave an unfinished pull cancels it.
func (g *pullGroup) leave(c *pullCall) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.waiters--
	if c.waiters == 0 {
		select {
		case <-c.done:
		default:
			c.cancel()
		}
	}
}
