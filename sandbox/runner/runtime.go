package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"
)

// runtimeServer is the pool's berth-runtime server ("berth-runtime serve"),
// which answers ExecSync for every pod: it stays warm, so that a probe costs
// the node one container process rather than a helper's start as well (the
// shims link no libcontainer). It is berthd's child: it exits when berthd's
// end of its lifeline closes, and the pool starts another when it is gone.
type runtimeServer struct {
	mu       sync.Mutex
	client   *Client
	lifeline *os.File
	exited   <-chan struct{} // closed once the server exited
}

// Exec runs args in running container id of pod (ExecSync) on the runtime
// server, which it starts if none runs. A call the server never saw (it had
// died) is made again on a new one.
func (p *Pool) Exec(ctx context.Context, pod, id string, args []string, timeout time.Duration, limit int) (ExecReply, error) {
	a := ExecArgs{Root: p.shimRoot(pod), ID: id, Args: args, Timeout: timeout, Limit: limit}
	for try := 0; ; try++ {
		c, err := p.runtime(ctx)
		if err != nil {
			return ExecReply{}, err
		}
		r, err := c.Exec(ctx, a)
		if errors.Is(err, errNotSent) && try == 0 {
			p.dropRuntime(c)
			continue
		}
		return r, err
	}
}

func (p *Pool) runtime(ctx context.Context) (*Client, error) {
	p.rt.mu.Lock()
	defer p.rt.mu.Unlock()
	if p.rt.client != nil && !p.rt.client.Dead() && !Closed(p.rt.exited) {
		return p.rt.client, nil
	}
	p.rt.stop()
	s, err := StartRuntime(ctx, p.bins.Runtime, filepath.Join(p.dir, "runtime.sock"), filepath.Join(p.dir, "runtime.log"))
	if err != nil {
		return nil, err
	}
	p.rt.client, p.rt.lifeline, p.rt.exited = s.Client, s.Lifeline, s.Exited
	return s.Client, nil
}

// dropRuntime forgets the server c answers for, which is gone.
func (p *Pool) dropRuntime(c *Client) {
	p.rt.mu.Lock()
	defer p.rt.mu.Unlock()
	if p.rt.client == c {
		p.rt.stop()
	}
}

// stop drops the client and closes the lifeline: the server exits.
func (rt *runtimeServer) stop() {
	if rt.client != nil {
		rt.client.Close()
		rt.client = nil
	}
	if rt.lifeline != nil {
		rt.lifeline.Close()
		rt.lifeline = nil
	}
}

// RuntimeServer is a started runtime server.
type RuntimeServer struct {
	Client *Client
	// Lifeline is the write end of the server's fd 3: closing it, or
	// berthd's exit, ends the server.
	Lifeline *os.File
	// Exited is closed once the server exited.
	Exited <-chan struct{}
}

// StartRuntime starts "binary serve" on socket (its fd 4 says when it
// listens), its output to logPath.
func StartRuntime(ctx context.Context, binary, socket, logPath string) (*RuntimeServer, error) {
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	lifeline, lifelineW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer lifeline.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		lifelineW.Close()
		return nil, err
	}
	defer ready.Close()
	cmd := exec.Command(binary, "serve", "--socket", socket)
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = logf, logf, []*os.File{lifeline, readyW}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		lifelineW.Close()
		return nil, fmt.Errorf("start runtime server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	err = awaitReady(ctx, ready, cmd, "runtime server", logPath)
	var c *Client
	if err == nil {
		c, err = Dial(ctx, socket)
	}
	if err != nil {
		lifelineW.Close()
		return nil, err
	}
	return &RuntimeServer{Client: c, Lifeline: lifelineW, Exited: exited}, nil
}

// ReadyTimeout is how long a shim or the runtime server may take to listen.
const ReadyTimeout = 10 * time.Second

// awaitReady waits until what cmd started says "ok" on ready (it listens
// then), and kills it when it does not within ReadyTimeout or ctx ends first.
func awaitReady(ctx context.Context, ready *os.File, cmd *exec.Cmd, what, logPath string) error {
	_ = ready.SetReadDeadline(time.Now().Add(ReadyTimeout))
	stop := context.AfterFunc(ctx, func() { _ = ready.SetReadDeadline(time.Now()) })
	defer stop()
	var b [2]byte
	_, err := io.ReadFull(ready, b[:])
	if err == nil && string(b[:]) == "ok" {
		return nil
	}
	_ = cmd.Process.Kill()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%s did not come up (%v; see %s)", what, err, logPath)
}

// SayReady tells whoever started the process that it listens: "ok" on fd,
// which it then closes.
func SayReady(fd int) error {
	f := os.NewFile(uintptr(fd), "ready")
	defer f.Close()
	_, err := f.Write([]byte("ok"))
	return err
}
