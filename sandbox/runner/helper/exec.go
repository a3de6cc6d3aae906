package helper

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/runc/libcontainer"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// processFile, in a container's libcontainer state dir, is its init's
// process (user, env, working dir, labels), which exec'd processes run as.
const processFile = "berth-process.json"

// writeProcess records the init's process beside libcontainer's state,
// atomically: a torn file would keep every later exec from starting.
func writeProcess(root, id string, sp *specs.Process) error {
	data, err := json.Marshal(sp)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(root, id, processFile), data, 0o600)
}

func readProcess(root, id string) (*specs.Process, error) {
	data, err := os.ReadFile(filepath.Join(root, id, processFile))
	if err != nil {
		return nil, fmt.Errorf("container %s: %v: %w", id, err, errdefs.ErrNotFound)
	}
	var sp specs.Process
	if err := json.Unmarshal(data, &sp); err != nil {
		return nil, err
	}
	return &sp, nil
}

// Exec runs a.Args in the running container and returns its output, each
// stream capped at a.Limit bytes (the rest is read and dropped). When
// a.Timeout passes first, the process is killed and TimedOut is set. When
// ctx ends first (the caller gave up: nobody will read the output), the
// process is killed and reaped too, and Exec fails with ctx's error: with no
// timeout it would otherwise run in the container for ever. As on a timeout,
// only the exec'd process is killed: what it forked in the container lives on
// (it shares the container's process group and cgroup with the container's
// own processes, so neither can be killed as a whole).
func Exec(ctx context.Context, a runner.ExecArgs) (runner.ExecReply, error) {
	if len(a.Args) == 0 {
		return runner.ExecReply{}, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	c, err := libcontainer.Load(a.Root, a.ID)
	if err != nil {
		return runner.ExecReply{}, fmt.Errorf("container %s: %v: %w", a.ID, err, errdefs.ErrNotFound)
	}
	if st, err := c.Status(); err != nil || st != libcontainer.Running {
		return runner.ExecReply{}, fmt.Errorf("container %s is not running: %w", a.ID, errdefs.ErrFailedPrecondition)
	}
	sp, err := readProcess(a.Root, a.ID)
	if err != nil {
		return runner.ExecReply{}, err
	}
	p := BaseProcess(sp, a.Args)
	outR, outW, err := os.Pipe()
	if err != nil {
		return runner.ExecReply{}, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return runner.ExecReply{}, err
	}
	defer errR.Close()
	p.Stdout, p.Stderr = outW, errW
	err = c.Run(p)
	outW.Close()
	errW.Close()
	if err != nil {
		return runner.ExecReply{}, fmt.Errorf("exec in %s: %w", a.ID, err)
	}
	stdout, stderr := &cappedBuffer{limit: a.Limit}, &cappedBuffer{limit: a.Limit}
	var copying sync.WaitGroup
	copying.Add(2)
	go func() { defer copying.Done(); _, _ = io.Copy(stdout, outR) }()
	go func() { defer copying.Done(); _, _ = io.Copy(stderr, errR) }()
	reply, err := waitExec(ctx, p, a.Timeout)
	if err != nil {
		outR.Close() // nobody reads the output: do not wait for it
		errR.Close()
		copying.Wait()
		return runner.ExecReply{}, fmt.Errorf("exec in %s: %w", a.ID, err)
	}
	runner.AwaitOutput(&copying, runner.OutputGrace)
	outR.Close() // ends copies a leftover child keeps going
	errR.Close()
	copying.Wait()
	reply.Stdout, reply.Stderr = stdout.Bytes(), stderr.Bytes()
	return reply, nil
}

// process is what waitExec needs of an exec'd process (a seam for tests).
type process interface {
	Wait() (*os.ProcessState, error)
	Signal(os.Signal) error
}

// waitExec waits for p, killing (and reaping) it when timeout (if > 0)
// passes first, or when ctx ends first, which it then returns.
func waitExec(ctx context.Context, p process, timeout time.Duration) (runner.ExecReply, error) {
	done := make(chan int, 1)
	go func() { done <- exitCode(p.Wait()) }()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case code := <-done:
		return runner.ExecReply{ExitCode: code}, nil
	case <-expired:
		_ = p.Signal(syscall.SIGKILL)
		return runner.ExecReply{ExitCode: <-done, TimedOut: true}, nil
	case <-ctx.Done():
		_ = p.Signal(syscall.SIGKILL)
		<-done
		return runner.ExecReply{}, ctx.Err()
	}
}

// cappedBuffer keeps the first limit bytes written to it and drops the rest.
type cappedBuffer struct {
	limit int
	buf   bytes.Buffer
	mu    sync.Mutex
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.limit - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}
