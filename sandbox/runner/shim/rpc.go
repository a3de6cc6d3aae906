package shim

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"

	"github.com/berth-cri/berth/sandbox/runner"
)

// The shim answers runner's wire protocol (runner/wire.go).

// handler decodes a call's parameters, runs it and returns its reply.
type handler func(params json.RawMessage) (any, error)

// method adapts a method of the form (args, *reply) error to a handler; the
// parameters are a one-element array holding args.
func method[A, R any](fn func(A, *R) error) handler {
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

// serveConn answers the calls on conn, each in its own goroutine (Exits is a
// long poll), until conn ends.
func serveConn(conn net.Conn, handlers map[string]handler) {
	defer conn.Close()
	dec := json.NewDecoder(conn)
	var sending sync.Mutex
	enc := json.NewEncoder(conn)
	var calls sync.WaitGroup
	defer calls.Wait()
	for {
		var req runner.Request
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

func answer(req runner.Request, handlers map[string]handler) runner.Response {
	resp := runner.Response{ID: req.ID}
	fail := func(msg string) runner.Response { resp.Error = &msg; return resp }
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
