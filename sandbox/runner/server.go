package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
)

// The serving side of the wire protocol (wire.go): the shim's, and the
// runtime server's (runtime.go).

// Handler decodes a call's parameters, runs it and returns its reply. ctx
// ends when the caller gives up on the call (a cancel request) or its
// connection ends: nobody waits for the reply then.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// Method adapts a method of the form (args, *reply) error to a handler; the
// parameters are a one-element array holding args.
func Method[A, R any](fn func(A, *R) error) Handler {
	return MethodContext(func(_ context.Context, a A, r *R) error { return fn(a, r) })
}

// MethodContext is Method for a method that stops its work when the caller
// gives up (ctx ends).
func MethodContext[A, R any](fn func(context.Context, A, *R) error) Handler {
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		var args [1]A
		if err := json.Unmarshal(params, &args); err != nil {
			return nil, fmt.Errorf("bad parameters: %v", err)
		}
		var reply R
		if err := fn(ctx, args[0], &reply); err != nil {
			return nil, err
		}
		return &reply, nil
	}
}

// Serve answers the calls to handlers on a unix socket (a stale one is
// replaced) until ctx ends; once it listens, it says "ok" on descriptor
// ready, unless that is 0.
func Serve(ctx context.Context, socket string, ready int, handlers map[string]Handler) error {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := ListenUnix(socket)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	if ready != 0 {
		if err := SayReady(ready); err != nil {
			l.Close()
			return err
		}
	}
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.Close()
			return fmt.Errorf("accept: %w", err)
		}
		go ServeConn(conn, handlers)
	}
}

// ServeConn answers the calls on conn, each in its own goroutine (Exits is a
// long poll), until conn ends. A call's context ends when a cancel request
// names it, or when conn ends (every call's then).
func ServeConn(conn net.Conn, handlers map[string]Handler) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var sending sync.Mutex
	enc := json.NewEncoder(conn)
	var calls sync.WaitGroup
	defer calls.Wait()
	ctx, cancelAll := context.WithCancel(context.Background())
	defer cancelAll() // before the wait for the calls: they end with it
	inFlight := &inFlight{cancels: map[uint64]context.CancelFunc{}}
	for {
		var req Request
		if err := dec.Decode(&req); err != nil {
			return // the end, or a garbled stream that cannot be resynchronised
		}
		if req.Method == CancelMethod {
			inFlight.cancel(req.Params) // a notification: no answer
			continue
		}
		// Registered before the next request is read: a cancel request,
		// which comes after its call on the stream, always finds it.
		callCtx := inFlight.start(ctx, req.ID)
		calls.Add(1)
		go func() {
			defer calls.Done()
			defer inFlight.end(req.ID)
			resp := answer(callCtx, req, handlers)
			sending.Lock()
			defer sending.Unlock()
			_ = enc.Encode(&resp)
		}()
	}
}

// inFlight holds the cancel funcs of one connection's calls in flight.
type inFlight struct {
	mu      sync.Mutex
	cancels map[uint64]context.CancelFunc
}

func (f *inFlight) start(ctx context.Context, id uint64) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if prev := f.cancels[id]; prev != nil {
		prev() // a reused id: the caller gave up on the older call
	}
	f.cancels[id] = cancel
	return ctx
}

func (f *inFlight) end(id uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cancel := f.cancels[id]; cancel != nil {
		cancel()
		delete(f.cancels, id)
	}
}

// cancel ends the context of the call that params (CancelArgs) names; a
// call already answered, or garbled params, are ignored.
func (f *inFlight) cancel(params json.RawMessage) {
	var args [1]CancelArgs
	if json.Unmarshal(params, &args) != nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if cancel := f.cancels[args[0].ID]; cancel != nil {
		cancel()
	}
}

func answer(ctx context.Context, req Request, handlers map[string]Handler) Response {
	resp := Response{ID: req.ID}
	fail := func(msg string) Response { resp.Error = &msg; return resp }
	h, ok := handlers[req.Method]
	if !ok {
		return fail("unknown method " + req.Method)
	}
	result, err := h(ctx, req.Params)
	if err != nil {
		return fail(err.Error())
	}
	if resp.Result, err = json.Marshal(result); err != nil {
		return fail(err.Error())
	}
	return resp
}
