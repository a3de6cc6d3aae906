package nri

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
)

// Domain is what the host needs from the rest of Berth; cri/ implements it
// over its pod and container domains. Its methods never call back into the
// Host (no hook, no Block): the host may call them while it holds its lock.
type Domain interface {
	// List returns every pod and every container Berth knows, in any state,
	// with the same data the hooks send (Container.State set), to
	// synchronise a plugin that registers. It is called with the plugin
	// sync lock held for writing (see Host.Block), so that no pod or
	// container is half-made while it runs.
	List(ctx context.Context) ([]*api.PodSandbox, []*api.Container, error)
	// UpdateContainer applies resources a plugin asked for to a created or
	// running container, as UpdateContainerResources would, but without
	// sending NRI events about it. What Berth cannot apply yet fails with
	// an error wrapping errdefs.ErrNotImplemented.
	UpdateContainer(ctx context.Context, id string, resources *api.LinuxResources) error
	// EvictContainer stops a container a plugin asked to evict, for reason;
	// errdefs.ErrNotImplemented while Berth cannot.
	EvictContainer(ctx context.Context, id, reason string) error
}

const (
	// RuntimeName is the runtime name plugins are told in Configure.
	RuntimeName = "berth"
	// listTimeout bounds Domain.List during a plugin's synchronisation.
	listTimeout = 30 * time.Second
	// updateTimeout bounds applying one plugin-requested update or eviction.
	updateTimeout = time.Minute
	// dialTimeout bounds the probe of an existing socket in Start.
	dialTimeout = 2 * time.Second
)

// Host relays pod and container events to NRI plugins. See doc.go for the
// order in which cri/ calls its hooks and for its locks.
type Host struct {
	cfg    Config
	domain Domain
	nri    *adaptation.Adaptation // nil when disabled

	// running is true from Start's success to Stop: hooks are no-ops
	// outside, so none can contend with the nri library's own start.
	running atomic.Bool

	// mu orders events per object and against a plugin's synchronisation;
	// it guards states. It is taken after the plugin sync lock (Block) and
	// before the nri library's lock, never the other way round.
	mu     sync.Mutex
	states states
}

// Option changes how New makes a Host.
type Option func(*options)

type options struct {
	version string
}

// WithVersion sets the runtime version plugins are told (Berth's version).
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// New makes a host for cfg. With cfg.Enable false it returns a Host whose
// methods do nothing, so that cri/ calls the hooks unconditionally.
func New(cfg Config, d Domain, opts ...Option) (*Host, error) {
	h := &Host{cfg: cfg, domain: d, states: newStates()}
	if !cfg.Enable {
		return h, nil
	}
	if d == nil {
		return nil, fmt.Errorf("NRI host needs a domain: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.SocketPath == "" || cfg.RegistrationTimeout <= 0 || cfg.RequestTimeout <= 0 {
		return nil, fmt.Errorf("NRI host needs a socket path and positive timeouts (got %+v): %w", cfg, errdefs.ErrInvalidArgument)
	}
	o := options{version: "unknown"}
	for _, opt := range opts {
		opt(&o)
	}
	adaptation.SetPluginRegistrationTimeout(cfg.RegistrationTimeout)
	adaptation.SetPluginRequestTimeout(cfg.RequestTimeout)
	a, err := adaptation.New(RuntimeName, o.version, h.synchronise, h.updateFromPlugin,
		adaptation.WithSocketPath(cfg.SocketPath),
		adaptation.WithPluginPath(cfg.PluginPath),
		adaptation.WithPluginConfigPath(cfg.PluginConfigPath))
	if err != nil {
		return nil, fmt.Errorf("NRI host: %w", err)
	}
	h.nri = a
	return h, nil
}

// Enabled reports whether the host relays events at all.
func (h *Host) Enabled() bool { return h.nri != nil }

// Start launches the pre-installed plugins, synchronises them with what
// Domain.List reports, and listens for external plugins. Call it once,
// after Berth has recovered its pods and containers and before it serves
// CRI: hooks called before Start returns (or after Stop) do nothing.
// Start refuses a socket path that another live process serves (containerd
// 2.x serves the default one); a stale socket file is replaced.
func (h *Host) Start(ctx context.Context) error {
	if h.nri == nil {
		log.G(ctx).Info("NRI is disabled")
		return nil
	}
	if h.running.Load() {
		return fmt.Errorf("NRI host already started: %w", errdefs.ErrFailedPrecondition)
	}
	if err := checkSocket(h.cfg.SocketPath); err != nil {
		return err
	}
	if err := h.nri.Start(); err != nil {
		h.nri.Stop()
		return fmt.Errorf("start NRI host on %s: %w", h.cfg.SocketPath, err)
	}
	h.running.Store(true)
	log.G(ctx).WithField("socket", h.cfg.SocketPath).Info("NRI host started")
	return nil
}

// Stop stops the pre-installed plugins, disconnects the external ones and
// removes the socket. Hooks do nothing afterwards.
func (h *Host) Stop() {
	if h.nri == nil || !h.running.Swap(false) {
		return
	}
	h.nri.Stop()
}

// Block holds off the synchronisation of a plugin that is registering until
// the returned function is called (once, from the same goroutine). cri/ takes
// it around the making of an object, from just before its first event hook
// (RunPodSandbox, CreateContainer) until its record is committed where
// Domain.List sees it, or its making is undone. A plugin that registers
// meanwhile is then either synchronised with the object or sees its events,
// never neither. Block is shared: many creations hold it at once. Never take
// it twice in one goroutine (a waiting synchronisation blocks the second),
// and never while holding a lock that Domain.List takes.
func (h *Host) Block() (unblock func()) {
	if h.nri == nil {
		return func() {}
	}
	return h.nri.BlockPluginSync().Unblock
}

// checkSocket makes sure that starting the host takes no socket from
// another process: a path that does not exist, or a socket nobody accepts
// on (left by a crash), is fine; anything else is refused.
func checkSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("NRI socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("NRI socket %s exists and is not a socket (%s); berthd does not replace it: %w", path, fi.Mode().Type(), errdefs.ErrAlreadyExists)
	}
	conn, err := net.DialTimeout("unix", path, dialTimeout)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("NRI socket %s is served by another process (containerd 2.x serves this path by default); berthd does not take it over: "+
			"set [nri] socket_path to a path of Berth's own, or [nri] enable = false: %w", path, errdefs.ErrAlreadyExists)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil // stale: the nri library removes it and listens anew
	}
	return fmt.Errorf("NRI socket %s: cannot tell whether another process serves it: %w", path, err)
}
