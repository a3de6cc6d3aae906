package runner

import (
	"context"
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
