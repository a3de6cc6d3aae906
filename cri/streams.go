package cri

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	utilexec "k8s.io/utils/exec"

	"github.com/berth-cri/berth/cri/streaming"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
)

// StartStreaming starts the server of exec, attach and port-forward sessions
// on addr, over HTTPS with tlsConf when it is set; Close stops it.
func (s *Server) StartStreaming(addr string, tlsConf *tls.Config) error {
	st, err := streaming.Start(addr, tlsConf, &streamRuntime{s: s})
	if err != nil {
		return err
	}
	s.streaming = st
	return nil
}

func (s *Server) streamer() (*streaming.Server, error) {
	if s.streaming == nil {
		return nil, fmt.Errorf("the streaming server is not running: %w", errdefs.ErrUnavailable)
	}
	return s.streaming, nil
}

// Exec returns the URL of an interactive exec session in a running
// container.
func (s *Server) Exec(ctx context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec needs a command: %w", errdefs.ErrInvalidArgument)
	}
	st, err := s.sessionServer(ctx, "exec", req.GetContainerId(), req.GetStdin() || req.GetStdout() || req.GetStderr())
	if err != nil {
		return nil, err
	}
	return st.GetExec(req)
}

// Attach returns the URL of a session attached to a running container's
// stdio.
func (s *Server) Attach(ctx context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	st, err := s.sessionServer(ctx, "attach", req.GetContainerId(), req.GetStdin() || req.GetStdout() || req.GetStderr())
	if err != nil {
		return nil, err
	}
	return st.GetAttach(req)
}

// sessionServer checks an exec or attach request (a stream asked for, the
// container running) and returns the server that will serve its session.
func (s *Server) sessionServer(ctx context.Context, what, containerID string, anyStream bool) (*streaming.Server, error) {
	if !anyStream {
		return nil, fmt.Errorf("%s needs one of stdin, stdout and stderr: %w", what, errdefs.ErrInvalidArgument)
	}
	if _, _, err := s.runningContainer(ctx, containerID); err != nil {
		return nil, err
	}
	return s.streamer()
}

// PortForward returns the URL of a port-forward session into a ready pod.
func (s *Server) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if _, err := s.readyPod(req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	st, err := s.streamer()
	if err != nil {
		return nil, err
	}
	return st.GetPortForward(req)
}

// podMountLabel is the SELinux mount label of a pod ("" without SELinux, or
// if the pod is gone).
func (s *Server) podMountLabel(podID string) string {
	if p, err := s.pods.Get(podID); err == nil {
		return p.Spec.SELinuxMountLabel
	}
	return ""
}

// streamRuntime runs the sessions of the streaming server.
type streamRuntime struct{ s *Server }

// Exec runs cmd in a running container with the session's streams, through
// FIFOs the shim connects the process (or its terminal) to, and returns its
// exit code as an ExitError. When the session ends first (the client went
// away), the process is killed.
func (r *streamRuntime) Exec(ctx context.Context, containerID string, cmd []string, in io.Reader, out, errw io.WriteCloser,
	tty bool, resize <-chan streaming.TerminalSize) error {
	c, shim, err := r.s.runningContainer(ctx, containerID)
	if err != nil {
		return err
	}
	execID := newID()[:32]
	f, err := container.NewFifos(filepath.Join(r.s.stateDir, "io", execID), in != nil, out != nil, errw != nil && !tty,
		r.s.podMountLabel(c.PodID))
	if err != nil {
		return err
	}
	defer f.Close()
	args := runner.ExecStartArgs{ID: c.ID, ExecID: execID, Args: cmd, TTY: tty,
		Stdin: f.StdinPath, Stdout: f.StdoutPath, Stderr: f.StderrPath}
	if tty {
		if size, ok := firstSize(resize); ok {
			args.Width, args.Height = size.Width, size.Height
		}
	}
	if err := shim.ExecStart(ctx, args); err != nil {
		return err
	}
	log.G(ctx).WithFields(log.Fields{"container": c.ID, "exec": execID, "cmd": cmd, "tty": tty}).Debug("exec session")
	copying := copyStreams(f, in, out, errw)
	if tty && resize != nil {
		go forwardResize(context.WithoutCancel(ctx), shim, c.ID, execID, resize)
	}
	code, err := waitSession(ctx, shim, execID)
	runner.AwaitOutput(copying, outputGrace) // what the process wrote last
	if err != nil {
		return err
	}
	if code != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// outputGrace is how long the last output is awaited after the process
// exited (a child it left behind may hold the streams open): longer than the
// shim's own wait, runner.OutputGrace, after which it closes them.
const outputGrace = 2 * time.Second

// firstSize takes the terminal size the client sends first, if it came.
func firstSize(resize <-chan streaming.TerminalSize) (streaming.TerminalSize, bool) {
	select {
	case size, ok := <-resize:
		return size, ok
	case <-time.After(100 * time.Millisecond):
		return streaming.TerminalSize{}, false
	}
}

// forwardResize passes the client's terminal sizes on to the terminal of
// the session execID, or (execID "") of container id.
func forwardResize(ctx context.Context, shim *runner.Client, id, execID string, resize <-chan streaming.TerminalSize) {
	for size := range resize {
		if err := shim.Resize(ctx, id, execID, size.Width, size.Height); err != nil {
			return // the session ended
		}
	}
}

// copyStreams copies the client's stdin into the stdin FIFO (closing it at
// the client's EOF) and the output FIFOs to the client, until their EOF.
func copyStreams(f *container.Fifos, in io.Reader, out, errw io.WriteCloser) *sync.WaitGroup {
	if f.Stdin != nil {
		go func() {
			_, _ = io.Copy(f.Stdin, in)
			f.CloseStdin()
		}()
	}
	var copying sync.WaitGroup
	for _, s := range []struct {
		from *os.File
		to   io.Writer
	}{{f.Stdout, out}, {f.Stderr, errw}} {
		if s.from != nil {
			copying.Add(1)
			go func() { defer copying.Done(); _, _ = io.Copy(s.to, s.from) }()
		}
	}
	return &copying
}

// waitSession waits for the session's process; when ctx ends first, it is
// killed and reaped.
func waitSession(ctx context.Context, shim *runner.Client, execID string) (int, error) {
	bg := context.WithoutCancel(ctx)
	for {
		w, err := shim.ExecWait(bg, execID, time.Second)
		if err != nil {
			return 0, err
		}
		if w.Exited {
			return w.ExitCode, nil
		}
		if ctx.Err() != nil {
			_ = shim.ExecKill(bg, execID)
		}
	}
}

// Attach connects the session to a running container's stdio, through FIFOs
// the shim tees the container's output into and feeds its stdin from, until
// the container's output ends or the client goes (which leaves the container
// running).
func (r *streamRuntime) Attach(ctx context.Context, containerID string, in io.Reader, out, errw io.WriteCloser, tty bool,
	resize <-chan streaming.TerminalSize) error {
	c, shim, err := r.s.runningContainer(ctx, containerID)
	if err != nil {
		return err
	}
	// The shim reads and writes these itself: no label.
	f, err := container.NewFifos(filepath.Join(r.s.stateDir, "io", newID()[:32]), in != nil, out != nil, errw != nil && !tty, "")
	if err != nil {
		return err
	}
	defer f.Close() // detaches
	if err := shim.Attach(ctx, runner.AttachArgs{ID: c.ID, Stdin: f.StdinPath, Stdout: f.StdoutPath, Stderr: f.StderrPath}); err != nil {
		return err
	}
	log.G(ctx).WithFields(log.Fields{"container": c.ID, "tty": tty}).Debug("attach session")
	if tty && resize != nil {
		go forwardResize(context.WithoutCancel(ctx), shim, c.ID, "", resize)
	}
	copying := copyStreams(f, in, out, errw)
	ended := make(chan struct{})
	if f.Stdout != nil || f.Stderr != nil { // else only the client ends it
		go func() { copying.Wait(); close(ended) }()
	}
	select {
	case <-ended:
	case <-ctx.Done():
	}
	return nil
}

// PortForward copies stream to and from a connection to port on the pod's
// loopback, made from inside the pod's network namespace (the host's for a
// hostNetwork pod), until either side ends.
func (r *streamRuntime) PortForward(ctx context.Context, podID string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	p, err := r.s.pods.Find(podID)
	if err != nil {
		return err
	}
	conn, err := sandbox.DialPort(ctx, p.Pins[sandbox.NetNS], port)
	if err != nil {
		return fmt.Errorf("pod %s port %d: %w", p.ID, port, err)
	}
	defer conn.Close()
	log.G(ctx).WithFields(log.Fields{"pod": p.ID, "port": port}).Debug("port-forward session")
	var copying sync.WaitGroup
	copying.Add(1)
	go func() {
		defer copying.Done()
		_, _ = io.Copy(conn, stream)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite() // the client is done sending
		}
	}()
	_, err = io.Copy(stream, conn)
	stream.Close() // ends the copy from the stream
	copying.Wait()
	return err
}
