// Package streaming serves the exec, attach and port-forward sessions the
// kubelet (or crictl) opens on the URLs the Exec, Attach and PortForward RPCs
// return, over SPDY or WebSocket, on k8s.io/cri-streaming. A URL is valid
// once, for a minute. The sessions themselves are the runtime's (Runtime).
package streaming

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
)

// Runtime runs the sessions (streaming.Runtime).
type Runtime = streaming.Runtime

// TerminalSize is a terminal's new size, sent while a tty session runs.
type TerminalSize = remotecommand.TerminalSize

// Server hands out session URLs and serves them.
type Server struct {
	urls streaming.Server
	http *http.Server
}

// Start listens on addr ("ip:port"; port 0 picks one) and serves rt's
// sessions in the background until Stop: over HTTPS when tlsConf is set.
func Start(addr string, tlsConf *tls.Config, rt Runtime) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: l.Addr().String()}
	if tlsConf != nil {
		cfg.BaseURL.Scheme, cfg.TLSConfig = "https", tlsConf
		l = tls.NewListener(l, tlsConf)
	}
	urls, err := streaming.NewServer(cfg, rt)
	if err != nil {
		l.Close()
		return nil, err
	}
	s := &Server{urls: urls, http: &http.Server{Handler: urls, ReadHeaderTimeout: 30 * time.Second, TLSConfig: tlsConf}}
	go func() {
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Printf("streaming server: %v\n", err)
		}
	}()
	return s, nil
}

// GetExec returns the URL of an exec session.
func (s *Server) GetExec(req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	return s.urls.GetExec(req)
}

// GetAttach returns the URL of an attach session.
func (s *Server) GetAttach(req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	return s.urls.GetAttach(req)
}

// GetPortForward returns the URL of a port-forward session.
func (s *Server) GetPortForward(req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	return s.urls.GetPortForward(req)
}

// Stop closes the listener and every open session; the containers go on.
func (s *Server) Stop() error { return s.http.Close() }
