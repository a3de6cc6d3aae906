package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/containerd/errdefs"
)

// The shim protocol's wire format is JSON-RPC 1.0 as net/rpc/jsonrpc writes
// it: one JSON object per call and per answer on a unix stream socket, calls
// answered in any order. Neither side uses net/rpc: it would link net/http,
// TLS and templates into every shim.

// Request is a call of Method ("Shim.<name>") with Params, a one-element
// array holding the method's arguments.
type Request struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
	ID     uint64          `json:"id"`
}

// Response answers the Request with the same ID: a Result, or an Error
// message (see EncodeError).
type Response struct {
	ID     uint64          `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *string         `json:"error"`
}

// CancelMethod is the request by which a caller gives up on its call
// Params[0].ID (CancelArgs): the server ends that call's context and sends no
// answer to the cancel request itself. A peer that does not know it answers
// "unknown method" with ID 0, which no call has (ids start at 1) and which
// the caller drops.
const CancelMethod = "Cancel"

// CancelArgs name the call a cancel request gives up on.
type CancelArgs struct {
	ID uint64
}

var errLost = fmt.Errorf("shim connection lost: %w", errdefs.ErrUnavailable)

// errNotSent is errLost before the call went out: the peer never saw it.
var errNotSent = fmt.Errorf("call not sent: %w", errLost)

// conn is the calling side of one connection.
type conn struct {
	nc      net.Conn
	sendMu  sync.Mutex // orders whole requests
	enc     *json.Encoder
	mu      sync.Mutex // guards what follows
	seq     uint64
	pending map[uint64]chan Response
	broken  bool
}

func newConn(nc net.Conn) *conn {
	c := &conn{nc: nc, enc: json.NewEncoder(nc), pending: map[uint64]chan Response{}}
	go c.read()
	return c
}

// call sends a request and waits for its answer or for ctx to end. A broken
// connection is errLost (errNotSent when the call did not go out).
func (c *conn) call(ctx context.Context, method string, args, reply any) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	params, err := json.Marshal([1]any{args})
	if err != nil {
		return err
	}
	answer := make(chan Response, 1)
	c.mu.Lock()
	if c.broken {
		c.mu.Unlock()
		return errNotSent
	}
	c.seq++
	id := c.seq
	c.pending[id] = answer
	c.mu.Unlock()
	c.sendMu.Lock()
	err = c.enc.Encode(Request{Method: method, Params: params, ID: id})
	c.sendMu.Unlock()
	if err != nil {
		c.nc.Close() // read ends and fails every pending call
		return errNotSent
	}
	select {
	case resp, ok := <-answer:
		if !ok {
			return errLost
		}
		if resp.Error != nil {
			return decodeError(errors.New(*resp.Error))
		}
		return json.Unmarshal(resp.Result, reply)
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		// In the background: a peer that reads nothing must not hold the
		// caller, who has given up already.
		go c.cancel(id)
		return ctx.Err()
	}
}

// cancel tells the peer that nobody waits for call id any more, so that it
// stops the work (an ExecSync's process is killed).
func (c *conn) cancel(id uint64) {
	params, err := json.Marshal([1]CancelArgs{{ID: id}})
	if err != nil {
		return
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	_ = c.enc.Encode(Request{Method: CancelMethod, Params: params})
}

// read hands each answer to its caller until the connection ends, then
// fails the calls still waiting.
func (c *conn) read() {
	dec := json.NewDecoder(c.nc)
	for {
		var resp Response
		if err := dec.Decode(&resp); err != nil {
			break
		}
		c.mu.Lock()
		answer := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if answer != nil {
			answer <- resp
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.broken = true
	for id, answer := range c.pending {
		close(answer)
		delete(c.pending, id)
	}
}

func (c *conn) isBroken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.broken
}
