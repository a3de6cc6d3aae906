package shim

import (
	"context"
	"encoding/json"
	"runtime/debug"
	"sync"
	"time"

	"github.com/berth-cri/berth/sandbox/runner"
)

// trimDelay is how long after its last call the shim gives its free heap
// back to the kernel. Creating and starting containers leaves a few hundred
// KiB of garbage that the Go runtime would otherwise keep for minutes, in
// every pod's shim.
const trimDelay = time.Second

// trimmer runs debug.FreeOSMemory once calls have stopped for trimDelay; an
// idle shim costs nothing.
type trimmer struct {
	mu    sync.Mutex
	timer *time.Timer
}

func (t *trimmer) kick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(trimDelay, debug.FreeOSMemory)
		return
	}
	t.timer.Reset(trimDelay)
}

// trimmed wraps a handler so that each call kicks the trimmer.
func trimmed(t *trimmer, h runner.Handler) runner.Handler {
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		defer t.kick()
		return h(ctx, params)
	}
}
