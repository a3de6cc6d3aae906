package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Service is the net/rpc service berth-shim serves (see runner/protocol.go).
type Service struct {
	cs       *Containers
	shutdown chan struct{}
}

// Create makes a container.
func (s *Service) Create(args runner.CreateArgs, _ *runner.Empty) error {
	var spec specs.Spec
	if err := json.Unmarshal(args.Spec, &spec); err != nil {
		return runner.EncodeError(fmt.Errorf("spec: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	return runner.EncodeError(s.cs.Create(args.ID, &spec, args.LogPath))
}

// Start starts a created container.
func (s *Service) Start(args runner.IDArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.Start(args.ID))
}

// Signal signals a container's init.
func (s *Service) Signal(args runner.SignalArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.Signal(args.ID, syscall.Signal(args.Signal)))
}

// Wait waits for a container's exit, at most the given time.
func (s *Service) Wait(args runner.WaitArgs, reply *runner.WaitReply) error {
	exit, done, err := s.cs.Wait(args.ID, args.Timeout)
	if err != nil {
		return runner.EncodeError(err)
	}
	*reply = runner.WaitReply{Exited: done, Exit: runner.Exit{Code: exit.Code, Signal: exit.Signal, At: exit.At}}
	return nil
}

// Delete removes a container.
func (s *Service) Delete(args runner.IDArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.Delete(args.ID))
}

// Shutdown ends the shim once it holds no container.
func (s *Service) Shutdown(_ runner.Empty, _ *runner.Empty) error {
	if n := s.cs.count(); n > 0 {
		return runner.EncodeError(fmt.Errorf("%d containers remain: %w", n, errdefs.ErrFailedPrecondition))
	}
	select {
	case <-s.shutdown:
	default:
		close(s.shutdown)
	}
	return nil
}

// Serve serves the shim protocol on socket until ctx ends or Shutdown is
// called, with libcontainer state under root.
func Serve(ctx context.Context, socket, root string) error {
	cs, err := NewContainers(root)
	if err != nil {
		return err
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	svc := &Service{cs: cs, shutdown: make(chan struct{})}
	go cs.ReapOrphans(svc.shutdown)
	srv := rpc.NewServer()
	if err := srv.RegisterName(runner.ServiceName, svc); err != nil {
		return err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-svc.shutdown:
		}
		l.Close()
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			return nil // listener closed: shutting down
		}
		go srv.ServeCodec(jsonrpc.NewServerCodec(conn))
	}
}
