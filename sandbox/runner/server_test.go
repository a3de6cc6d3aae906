package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// serveTest serves handlers on a socket of its own and returns a client and
// a func that breaks the server's side of the connections.
func serveTest(t *testing.T, handlers map[string]Handler) (*Client, func()) {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "s.sock")
	l, err := ListenUnix(socket)
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
			go ServeConn(c, handlers)
		}
	}()
	t.Cleanup(func() { l.Close() })
	c, err := Dial(context.Background(), socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	server := <-conns
	return c, func() { server.Close() }
}

func TestWireProtocol(t *testing.T) {
	release := make(chan struct{})
	c, breakConn := serveTest(t, map[string]Handler{
		"Shim.List": Method(func(_ Empty, r *ListReply) error { r.IDs = []string{"a", "b"}; return nil }),
		"Shim.Wait": Method(func(a WaitArgs, r *WaitReply) error {
			<-release
			r.Exited, r.Exit.Code = true, len(a.ID)
			return nil
		}),
		"Shim.Delete": Method(func(a IDArgs, _ *Empty) error {
			return EncodeError(fmt.Errorf("container %s: %w", a.ID, errdefs.ErrNotFound))
		}),
	})
	ctx := context.Background()
	// A long call does not hold up the ones after it.
	waited := make(chan WaitReply, 1)
	go func() { r, _ := c.Wait(ctx, "four", time.Minute); waited <- r }()
	if ids, err := c.List(ctx); err != nil || len(ids) != 2 || ids[1] != "b" {
		t.Fatalf("List = %v, %v", ids, err)
	}
	close(release)
	if r := <-waited; !r.Exited || r.Exit.Code != 4 {
		t.Fatalf("Wait = %+v", r)
	}
	// Errors keep their kind; unknown methods fail.
	if err := c.Delete(ctx, "x"); !errdefs.IsNotFound(err) {
		t.Fatalf("Delete = %v, want NotFound", err)
	}
	if err := c.Shutdown(ctx); err == nil {
		t.Fatal("an unknown method answered")
	}
	// A cancelled call returns at once.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Exec(cancelled, ExecArgs{ID: "x", Args: []string{"true"}}); err != context.Canceled {
		t.Fatalf("cancelled call = %v", err)
	}
	// A broken connection fails calls as Unavailable and marks the client dead.
	breakConn()
	deadline := time.Now().Add(10 * time.Second)
	for !c.Dead() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := c.List(ctx); !c.Dead() || !errdefs.IsUnavailable(err) || !errors.Is(err, errNotSent) {
		t.Fatalf("after the shim went: dead %v, List = %v", c.Dead(), err)
	}
}

// A caller that gives up on a call (its context ends) ends the call's context
// on the server, so that the work stops (ExecSync's process is killed); the
// calls after it on the same connection are not affected.
func TestCancelledCallEndsItsContextOnTheServer(t *testing.T) {
	started, stopped := make(chan struct{}), make(chan error, 1)
	c, _ := serveTest(t, map[string]Handler{
		"Shim.Exec": MethodContext(func(ctx context.Context, _ ExecArgs, _ *ExecReply) error {
			close(started)
			<-ctx.Done() // blocks for ever unless the cancel arrives
			stopped <- ctx.Err()
			return ctx.Err()
		}),
		"Shim.List": Method(func(_ Empty, r *ListReply) error { r.IDs = []string{"a"}; return nil }),
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	if _, err := c.Exec(ctx, ExecArgs{ID: "x", Args: []string{"sleep", "1000"}}); err != context.Canceled {
		t.Fatalf("Exec = %v, want the caller's context.Canceled", err)
	}
	if err := <-stopped; err != context.Canceled {
		t.Fatalf("the handler's context ended with %v", err)
	}
	if ids, err := c.List(context.Background()); err != nil || len(ids) != 1 {
		t.Fatalf("a call after the cancel: List = %v, %v", ids, err)
	}
}

// When the connection ends, every call in flight on it is cancelled: nobody
// is left to read the answers.
func TestLostConnectionEndsTheCallsInFlight(t *testing.T) {
	started, stopped := make(chan struct{}), make(chan struct{})
	c, _ := serveTest(t, map[string]Handler{
		"Shim.Exec": MethodContext(func(ctx context.Context, _ ExecArgs, _ *ExecReply) error {
			close(started)
			<-ctx.Done()
			close(stopped)
			return nil
		}),
	})
	go func() { _, _ = c.Exec(context.Background(), ExecArgs{ID: "x", Args: []string{"true"}}) }()
	<-started
	c.Close()
	<-stopped
}

// A peer that does not know cancel requests answers them as an unknown method
// with id 0, which the caller drops: its later calls are answered as usual.
func TestCancelToAPeerThatDoesNotKnowIt(t *testing.T) {
	c, _ := serveTest(t, map[string]Handler{
		CancelMethod: func(context.Context, json.RawMessage) (any, error) { return nil, errors.New("unknown method") },
		"Shim.List":  Method(func(_ Empty, r *ListReply) error { r.IDs = []string{"a"}; return nil }),
	})
	c.conn.cancel(7)
	if ids, err := c.List(context.Background()); err != nil || len(ids) != 1 {
		t.Fatalf("List = %v, %v", ids, err)
	}
}
