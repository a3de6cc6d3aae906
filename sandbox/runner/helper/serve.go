package helper

import (
	"context"
	"os"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Serve is the runtime server ("berth-runtime serve"): it answers Exec
// (ExecSync) on socket for the containers of every shim until ctx ends or
// lifeline, a pipe whose other end berthd holds, reads EOF; it says "ok" on
// descriptor ready once it listens. It is warm: a probe costs the node one
// container process, not a helper's start too.
func Serve(ctx context.Context, socket string, lifeline *os.File, ready int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var b [1]byte
		_, _ = lifeline.Read(b[:]) // berthd is gone
		cancel()
	}()
	handlers := map[string]runner.Handler{
		runner.ServiceName + ".Exec": runner.MethodContext(func(ctx context.Context, a runner.ExecArgs, r *runner.ExecReply) error {
			reply, err := Exec(ctx, a)
			*r = reply
			return runner.EncodeError(err)
		}),
	}
	return runner.Serve(ctx, socket, ready, handlers)
}
