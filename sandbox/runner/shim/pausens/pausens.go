// Package pausens moves the pause process of a pod with its own user
// namespace into that namespace before Go starts: a multi-threaded process
// (any Go program once its runtime runs) cannot join a user namespace, so a C
// constructor does it while the process is still single-threaded.
//
// When _BERTH_PAUSE_USERNS names an open file descriptor of a user namespace,
// the constructor joins it, becomes its root (the pod's root on the host, not
// the host's), unshares the PID namespace and forks: the child, PID 1 of the
// new PID namespace, goes on into Go and runs the pause; the parent writes
// the child's pid (as the shim sees it) to the descriptor in
// _BERTH_PAUSE_PIDFD and exits, so the shim, a child subreaper, adopts the
// pause. Any failure exits with status 1 and nothing written. Import it for
// its side effect in the binary that runs the pause (berth-shim).
package pausens

// #cgo CFLAGS: -Wall
import "C"

// Environment names the shim passes the constructor its descriptors in.
const (
	UsernsEnv = "_BERTH_PAUSE_USERNS"
	PIDFDEnv  = "_BERTH_PAUSE_PIDFD"
)
