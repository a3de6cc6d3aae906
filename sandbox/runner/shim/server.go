package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Service is what berth-shim serves (see runner/protocol.go).
type Service struct {
	cs       *Containers
	pause    pause
	shutdown chan struct{}
	trim     trimmer
}

// Pause starts the pod's pause process (once) and returns its pid.
func (s *Service) Pause(args runner.PauseArgs, reply *runner.PauseReply) error {
	pid, err := s.pause.start(args)
	reply.PID = pid
	return runner.EncodeError(err)
}

// Create makes a container.
func (s *Service) Create(args runner.CreateArgs, _ *runner.Empty) error {
	var spec specs.Spec
	if err := json.Unmarshal(args.Spec, &spec); err != nil {
		return runner.EncodeError(fmt.Errorf("spec: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	return runner.EncodeError(s.cs.Create(args.ID, &spec, args.IO))
}

// Start starts a created container.
func (s *Service) Start(args runner.IDArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.Start(args.ID))
}

// Update sets a container's cgroup resources.
func (s *Service) Update(args runner.UpdateArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.Update(args.ID, &args.Resources))
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
	*reply = runner.WaitReply{Exited: done, Exit: wireExit(exit)}
	return nil
}

func wireExit(e Exit) runner.Exit {
	return runner.Exit{Code: e.Code, Signal: e.Signal, Reason: e.Reason, At: e.At}
}

// Exits long-polls for container exits.
func (s *Service) Exits(args runner.ExitsArgs, reply *runner.ExitsReply) error {
	for _, e := range s.cs.Exits(args.After, args.Timeout) {
		reply.Exits = append(reply.Exits, runner.ExitEvent{ID: e.ID, Seq: e.Seq, Exit: wireExit(e.Exit)})
	}
	return nil
}

// List lists the shim's containers.
func (s *Service) List(_ runner.Empty, reply *runner.ListReply) error {
	reply.IDs = s.cs.IDs()
	return nil
}

// ReopenLog reopens a container's log file.
func (s *Service) ReopenLog(args runner.IDArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.ReopenLog(args.ID))
}

// ExecStart starts an interactive exec session.
func (s *Service) ExecStart(args runner.ExecStartArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.ExecStart(args))
}

// ExecWait waits for a session's process.
func (s *Service) ExecWait(args runner.ExecWaitArgs, reply *runner.ExecWaitReply) error {
	r, err := s.cs.ExecWait(args.ExecID, args.Timeout)
	*reply = r
	return runner.EncodeError(err)
}

// ExecKill kills a session's process.
func (s *Service) ExecKill(args runner.ExecIDArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.ExecKill(args.ExecID))
}

// Resize sets the terminal size of a session or a container.
func (s *Service) Resize(args runner.ResizeArgs, _ *runner.Empty) error {
	if args.ExecID == "" {
		return runner.EncodeError(s.cs.ResizeContainer(args.ID, args.Width, args.Height))
	}
	return runner.EncodeError(s.cs.Resize(args.ExecID, args.Width, args.Height))
}

// Attach attaches a session to a container's stdio.
func (s *Service) Attach(args runner.AttachArgs, _ *runner.Empty) error {
	return runner.EncodeError(s.cs.Attach(args))
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
	s.pause.stop()
	select {
	case <-s.shutdown:
	default:
		close(s.shutdown)
	}
	return nil
}

// handlers maps each method of the protocol to the service's.
func (s *Service) handlers() map[string]runner.Handler {
	name := func(m string) string { return runner.ServiceName + "." + m }
	// Calls that allocate much have the free heap given back after them.
	heavy := func(h runner.Handler) runner.Handler { return trimmed(&s.trim, h) }
	return map[string]runner.Handler{
		name("Pause"):     heavy(runner.Method(s.Pause)),
		name("Create"):    heavy(runner.Method(s.Create)),
		name("Start"):     heavy(runner.Method(s.Start)),
		name("Update"):    heavy(runner.Method(s.Update)),
		name("Signal"):    runner.Method(s.Signal),
		name("Wait"):      runner.Method(s.Wait),
		name("Exits"):     runner.Method(s.Exits),
		name("List"):      runner.Method(s.List),
		name("ReopenLog"): runner.Method(s.ReopenLog),
		name("ExecStart"): heavy(runner.Method(s.ExecStart)),
		name("ExecWait"):  runner.Method(s.ExecWait),
		name("ExecKill"):  runner.Method(s.ExecKill),
		name("Resize"):    runner.Method(s.Resize),
		name("Attach"):    runner.Method(s.Attach),
		name("Delete"):    heavy(runner.Method(s.Delete)),
		name("Shutdown"):  runner.Method(s.Shutdown),
	}
}

// Config is what a shim serves on and with.
type Config struct {
	// Socket is the unix socket to serve berthd on.
	Socket string
	// Root holds libcontainer's state and the exit records.
	Root string
	// Runtime is the berth-runtime binary.
	Runtime string
	// ReadyFD, if not 0, is a descriptor to say "ok" on once serving.
	ReadyFD int
}

// Serve serves the shim protocol until ctx ends or Shutdown is called.
func Serve(ctx context.Context, cfg Config) error {
	cs, err := NewContainers(cfg.Root, cfg.Runtime)
	if err != nil {
		return err
	}
	svc := &Service{cs: cs, pause: pause{runtime: cfg.Runtime, root: filepath.Join(cfg.Root, "pause-root")},
		shutdown: make(chan struct{})}
	go cs.ReapOrphans(svc.shutdown)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-svc.shutdown:
			cancel()
		}
	}()
	return runner.Serve(ctx, cfg.Socket, cfg.ReadyFD, svc.handlers())
}
