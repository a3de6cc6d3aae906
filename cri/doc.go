// Package cri is Berth's hub: it serves the CRI RuntimeService and ImageService,
// translates CRI messages to calls on the domain packages (images, sandbox, cni,
// volumes), owns the order of steps of every RPC and the rollback when one fails.
//
// One RPC per file, named <noun>_<verb>.go. Handlers return errors wrapping the
// sentinels of github.com/containerd/errdefs; the unary and stream interceptors
// (interceptor.go) give every call a request id and a context logger, log it
// with its duration, and map those errors to gRPC codes once (errors.go).
//
// NRI: the handlers call the hooks of the NRI host (cri/nri, set by UseNRI)
// in the order cri/nri/doc.go gives, through the helpers of nri_hooks.go
// (the exit watcher's StopContainer comes from the container store's change
// notifications); NRIDomain (nri_domain.go) lists pods and containers for a
// plugin that registers and applies the updates plugins ask for. The spec a
// container was created with (adjusted) is in its record (Container.Spec) and
// cached in memory, with later resource updates, for its later events.
//
// RPCs that are not built yet fall through to the generated Unimplemented
// servers, which answer codes.Unimplemented naming the method.
//
// The package does no syscalls and no file I/O of its own; it holds no lock
// today (Version, Status and RuntimeConfig read immutable state).
package cri
