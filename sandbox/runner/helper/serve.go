package helper

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Serve is the runtime server ("berth-runtime serve"): it answers Exec
// (ExecSync) on socket for the containers of every shim until ctx ends or
// lifeline, a pipe whose other end berthd holds, reads EOF; it says "ok" on
// descriptor ready once it listens. It is warm: a probe costs the node one
// container process, not a helper's start too.
func Serve(ctx context.Context, socket string, lifeline *os.File, ready int) error {
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := runner.ListenUnix(socket)
	if err != nil {
		return err
	}
	if err := runner.SayReady(ready); err != nil {
		l.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var b [1]byte
		_, _ = lifeline.Read(b[:]) // berthd is gone
		cancel()
	}()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	handlers := map[string]runner.Handler{
		runner.ServiceName + ".Exec": runner.Method(func(a runner.ExecArgs, r *runner.ExecReply) error {
			reply, err := Exec(a)
			*r = reply
			return runner.EncodeError(err)
		}),
	}
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go runner.ServeConn(conn, handlers)
	}
}
