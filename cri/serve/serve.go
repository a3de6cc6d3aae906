package serve

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/containerd/log"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri"
)

// CRIServer is what Serve registers on the gRPC server.
type CRIServer interface {
	runtime.RuntimeServiceServer
	runtime.ImageServiceServer
}

// GracePeriod bounds how long a stop waits for in-flight RPCs before it cuts
// them off.
const GracePeriod = 10 * time.Second

// Serve serves CRI on l until ctx is cancelled, then stops gracefully: new
// connections are refused, in-flight RPCs get GracePeriod to finish, and the
// socket file is removed. It returns nil after a requested stop. Under
// systemd it reports readiness and stopping (notify.go).
func Serve(ctx context.Context, l *net.UnixListener, srv CRIServer) error {
	g := grpc.NewServer(
		grpc.ChainUnaryInterceptor(cri.UnaryInterceptor),
		grpc.ChainStreamInterceptor(cri.StreamInterceptor),
	)
	runtime.RegisterRuntimeServiceServer(g, srv)
	runtime.RegisterImageServiceServer(g, srv)

	path := l.Addr().String()
	errc := make(chan error, 1)
	go func() { errc <- g.Serve(l) }()
	log.G(ctx).WithField("socket", path).Info("serving CRI")
	// The socket listens: calls from here on are queued and answered.
	notify(ctx, "READY=1", "STATUS=serving CRI on "+path)

	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		notify(ctx, "STOPPING=1")
		log.G(ctx).Info("stopping: waiting for in-flight RPCs")
		stopGracefully(g)
		err = <-errc
	}
	if rmErr := os.Remove(path); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) {
		log.G(ctx).WithError(rmErr).Warn("remove socket")
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

func stopGracefully(g *grpc.Server) {
	done := make(chan struct{})
	go func() {
		g.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(GracePeriod):
		g.Stop()
		<-done
	}
}
