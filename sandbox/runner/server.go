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

// Handler decodes a call's parameters, runs it and returns its reply.
type Handler func(params json.RawMessage) (any, error)

// Method adapts a method of the form (args, *reply) error to a handler; the
// parameters are a one-element array holding args.
func Method[A, R any](fn func(A, *R) error) Handler {
	return func(params json.RawMessage) (any, error) {
		var args [1]A
		if err := json.Unmarshal(params, &args); err != nil {
			return nil, fmt.Errorf("bad parameters: %v", err)
		}
		var reply R
		if err := fn(args[0], &reply); err != nil {
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
// long poll), until conn ends.
func ServeConn(conn net.Conn, handlers map[string]Handler) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var sending sync.Mutex
	enc := json.NewEncoder(conn)
	var calls sync.WaitGroup
	defer calls.Wait()
	for {
		var req Request
		if err := dec.Decode(&req); err != nil {
			return // the end, or a garbled stream that cannot be resynchronised
		}
		calls.Add(1)
		go func() {
			defer calls.Done()
			resp := answer(req, handlers)
			sending.Lock()
			defer sending.Unlock()
			_ = enc.Encode(&resp)
		}()
	}
}

func answer(req Request, handlers map[string]Handler) Response {
	resp := Response{ID: req.ID}
	fail := func(msg string) Response { resp.Error = &msg; return resp }
	h, ok := handlers[req.Method]
	if !ok {
		return fail("unknown method " + req.Method)
	}
	result, err := h(req.Params)
	if err != nil {
		return fail(err.Error())
	}
	if resp.Result, err = json.Marshal(result); err != nil {
		return fail(err.Error())
	}
	return resp
}
