// Package runner is berthd's side of berth-shim: it starts a pod's shim
// (detached, in its own session, so that berthd can restart while containers
// run), and talks to it over a unix socket. It also keeps the runtime server
// (runtime.go), which answers ExecSync, and holds the protocol between the
// shim and its berth-runtime helpers (helper.go).
//
// The protocol is JSON-RPC 1.0 as Go's net/rpc/jsonrpc writes it (service
// "Shim"; wire.go), spoken without net/rpc so that the shim links neither
// net/http nor TLS: small, documented by the argument types in protocol.go,
// and cheap for the shim's memory. Errors cross it as "<kind>: message", kind being an errdefs
// sentinel's name, so that callers keep the error vocabulary. A caller that
// gives up on a call sends a "Cancel" request naming it (no answer): the
// server ends that call's context, as it ends every call's when the
// connection ends, and a handler made with MethodContext stops its work
// (ExecSync kills its process).
//
// Only runner/helper (berth-runtime) imports libcontainer: not the shim.
package runner
