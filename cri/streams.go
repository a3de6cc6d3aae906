package cri

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/streaming"
	"github.com/berth-cri/berth/sandbox"
)

// StartStreaming starts the server of exec, attach and port-forward sessions
// on addr; Close stops it.
func (s *Server) StartStreaming(addr string) error {
	st, err := streaming.Start(addr, &streamRuntime{s: s})
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

// PortForward returns the URL of a port-forward session into a ready pod.
func (s *Server) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	p, err := s.pods.Find(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	if p.State != sandbox.Ready {
		return nil, fmt.Errorf("pod %s is not ready: %w", p.ID, errdefs.ErrFailedPrecondition)
	}
	st, err := s.streamer()
	if err != nil {
		return nil, err
	}
	return st.GetPortForward(req)
}

// streamRuntime runs the sessions of the streaming server.
type streamRuntime struct{ s *Server }

// Exec sessions are not built yet (the Exec RPC says so before any URL).
func (r *streamRuntime) Exec(context.Context, string, []string, io.Reader, io.WriteCloser, io.WriteCloser, bool, <-chan streaming.TerminalSize) error {
	return errdefs.ErrNotImplemented
}

// Attach sessions are not built yet (the Attach RPC says so before any URL).
func (r *streamRuntime) Attach(context.Context, string, io.Reader, io.WriteCloser, io.WriteCloser, bool, <-chan streaming.TerminalSize) error {
	return errdefs.ErrNotImplemented
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
