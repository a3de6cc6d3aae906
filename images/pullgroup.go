package images

import (
	"context"
	"sync"
)

// group makes concurrent calls with the same key share one run: pulls of the
// same reference (pullGroup), and the layers that pulls of different images
// share (a layer is fetched and unpacked once, by chain ID). The shared run
// goes on its own context, cancelled only when every caller waiting for it
// has given up: one impatient kubelet retry must not cancel a pull that
// another caller still waits for, nor one pull's failure a layer that
// another pull still needs.
type group[T any] struct {
	// settle: the last caller to give up waits until the run it cancelled
	// has finished (cleaned up), so that a failed pull leaves nothing
	// behind when it returns. pullGroup callers (the CRI) do not wait.
	settle bool

	mu    sync.Mutex
	calls map[string]*call[T]
}

type call[T any] struct {
	done    chan struct{}
	val     T
	err     error
	waiters int
	cancel  context.CancelFunc
}

// pullGroup shares the pulls of one reference.
type pullGroup = group[*Image]

// do runs fn once per key at a time and returns its result to every caller.
// A caller whose ctx ends stops waiting and gets ctx's error.
func (g *group[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	v, _, err := g.join(ctx, key, fn)
	return v, err
}

// join is do, and also tells whether the caller joined a run that another
// caller had started.
func (g *group[T]) join(ctx context.Context, key string, fn func(context.Context) (T, error)) (_ T, joined bool, _ error) {
	g.mu.Lock()
	if g.calls == nil {
		g.calls = map[string]*call[T]{}
	}
	c, joined := g.calls[key]
	if !joined {
		// The run keeps the first caller's values (logger) but not its
		// cancellation, which is managed through waiters.
		rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[T]{done: make(chan struct{}), cancel: cancel}
		g.calls[key] = c
		go g.run(rctx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		g.leave(c)
		return c.val, joined, c.err
	case <-ctx.Done():
		if g.leave(c) && g.settle {
			<-c.done
		}
		var zero T
		return zero, joined, ctx.Err()
	}
}

func (g *group[T]) run(ctx context.Context, key string, c *call[T], fn func(context.Context) (T, error)) {
	c.val, c.err = fn(ctx)
	g.mu.Lock()
	delete(g.calls, key)
	g.mu.Unlock()
	c.cancel()
	close(c.done)
}

// leave drops a waiter; the last one to leave an unfinished run cancels it,
// and leave then reports true.
func (g *group[T]) leave(c *call[T]) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c.waiters--
	if c.waiters == 0 {
		select {
		case <-c.done:
		default:
			c.cancel()
			return true
		}
	}
	return false
}
