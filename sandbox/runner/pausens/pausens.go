// Package pausens is a pod's pause process, all of it in a C constructor that
// never returns: Go never starts in the pause, so it costs a pod a few pages
// rather than a Go runtime, and it is set up while single-threaded
// (capabilities are per thread, and a multi-threaded process cannot join a
// user namespace). Import it for its side effect in the binary that runs the
// pause (berth-runtime). The environment it reads is runner.Pause*Env.
//
// A process started with runner.PauseRootEnv naming an open descriptor of an empty dir is
// a pause: a C constructor gives it a mount namespace of its own whose only
// mount is an empty read-only tmpfs on that dir, its root (the host's mounts
// detached: it holds none of them alive), drops every capability (the
// bounding set too), sets no_new_privs and makes it not dumpable, so that the
// pod's processes, which share its PID namespace, can neither trace it nor
// reach the host's filesystem through /proc/1/root. With runner.PauseLabelEnv and
// runner.PauseMountLabelEnv (SELinux hosts), the tmpfs carries the pod's mount label and
// the pause moves into the pod's domain (a dynamic transition, which the
// policy must allow the shim's domain; if it does not, the pause stays in the
// shim's and says so on stderr). It reports "ok" on the descriptor in
// runner.PauseReportEnv when it is set up, or the step that failed. With runner.PauseUsernsEnv
// naming a descriptor of the pod's user namespace, it first joins that
// namespace as its root (the pod's root on the host, not the host's),
// unshares the PID namespace and forks: the child, PID 1 of the new PID
// namespace, goes on to be the pause; the parent writes the child's pid (as
// the shim sees it) to the descriptor in runner.PausePIDFDEnv and exits, so that the
// shim, a child subreaper, adopts the pause. The pause then reaps what is
// reparented to it (it is PID 1 of the pod's PID namespace) and exits on
// SIGTERM or SIGINT, or at EOF on fd 3, whose other end the shim holds. Any
// failure exits with status 1.
package pausens

// #cgo CFLAGS: -Wall
import "C"
