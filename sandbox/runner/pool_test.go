package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-cri/berth/test/wait"
)

// A fake shim that marks each start in <pod dir>/started, then waits until
// <pod dir>/open exists and exits without saying it is ready.
const gatedShim = `#!/bin/sh
dir=$(dirname "$3")
echo start >> "$dir/started"
while [ ! -e "$dir/open" ]; do sleep 0.05; done
exit 1
`

// A shim start holds up the calls for its own pod only: while pod a's shim
// hangs in its start, pod b's running shim is found, and a second Get of pod
// a starts no second shim beside the first.
func TestShimStartHoldsUpOnlyItsPod(t *testing.T) {
	dir := t.TempDir()
	shim := filepath.Join(dir, "fake-shim")
	if err := os.WriteFile(shim, []byte(gatedShim), 0o755); err != nil {
		t.Fatal(err)
	}
	pool := NewPool(Binaries{Shim: shim, Runtime: "/nonexistent"}, filepath.Join(dir, "pods"))
	serveFakeShim(t, pool.socket("b"))
	gate := filepath.Join(dir, "pods", "a")
	t.Cleanup(func() { os.WriteFile(filepath.Join(gate, "open"), nil, 0o600) })

	ctx := context.Background()
	first, second := make(chan error, 1), make(chan error, 1)
	go func() { _, err := pool.Get(ctx, "a"); first <- err }()
	wait.ForFile(t, filepath.Join(gate, "started"))
	go func() { _, err := pool.Get(ctx, "a"); second <- err }()

	wait.Within(t, "Get of another pod's running shim", func() error { _, err := pool.Get(ctx, "b"); return err })
	wait.Within(t, "Lookup of another pod's running shim", func() error { _, err := pool.Lookup(ctx, "b"); return err })

	select {
	case err := <-first:
		t.Fatalf("pod b was served only once pod a's shim start had ended (%v)", err)
	default:
	}
	starts, _ := os.ReadFile(filepath.Join(gate, "started"))
	if n := strings.Count(string(starts), "start"); n != 1 {
		t.Fatalf("pod a's shim was started %d times at once, want 1", n)
	}
	if err := os.WriteFile(filepath.Join(gate, "open"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := wait.Receive(t, "the first Get of pod a", first); err == nil {
		t.Fatal("Get of a shim that never came up worked")
	}
	if err := wait.Receive(t, "the second Get of pod a", second); err == nil {
		t.Fatal("the second Get of a shim that never came up worked")
	}
}

// serveFakeShim serves the shim protocol (no methods) on socket, as a shim
// that runs.
func serveFakeShim(t *testing.T, socket string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := ListenUnix(socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go ServeConn(c, map[string]Handler{})
		}
	}()
}
