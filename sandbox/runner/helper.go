package runner

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The helper protocol: berth-shim links no libcontainer (the shim lives as
// long as its pod, and its memory is every pod's cost); it runs each
// libcontainer operation in a short-lived "berth-runtime OP" process instead
// (package runner/helper). The request is one JSON HelperRequest on the
// helper's stdin; the answer one JSON HelperReply on its stdout, once the
// operation is done; the files the request names are the helper's
// descriptors from 3 on. A container's init is the create helper's child:
// when the helper exits, the shim, a child subreaper, adopts it.

// ExecFifo, in a container's libcontainer state dir, is the FIFO its created
// init waits on (libcontainer's execFifoFilename): the shim starts the
// container by reading it, as runc start does, with no helper.
const ExecFifo = "exec.fifo"

// Helper operations, the helper's first argument.
const (
	// HelperCreate makes container ID from Spec and starts its init, which
	// waits on ExecFifo before it execs; the reply has its PID and cgroups.
	HelperCreate = "create"
	// HelperExec runs Process in a running container and replies once it
	// exited. SIGTERM to the helper kills the process.
	HelperExec = "exec"
	// HelperUpdate sets the container's cgroup Resources.
	HelperUpdate = "update"
	// HelperSignal signals the container's init; SIGKILL kills every
	// process of a container without a PID namespace of its own.
	HelperSignal = "signal"
	// HelperDelete kills what is left of the container and removes its
	// cgroups and state; a container already gone is no error.
	HelperDelete = "delete"
)

// HelperRequest is an operation on container ID of the libcontainer state
// under Root.
type HelperRequest struct {
	Root string
	ID   string
	// Spec is the container's (create).
	Spec *specs.Spec `json:",omitempty"`
	// Process is what exec runs: its args, env, working dir, user and LSM
	// labels; Terminal gives it a pseudo-terminal of Width×Height.
	Process *specs.Process `json:",omitempty"`
	// Resources are update's.
	Resources *specs.LinuxResources `json:",omitempty"`
	Signal    int                   `json:",omitempty"`
	// Stdin, Stdout and Stderr are the helper's descriptors that become the
	// process's stdio (0: none, /dev/null); with a terminal, Console is a
	// socket on which the process sends the terminal's master.
	Stdin, Stdout, Stderr, Console int `json:",omitempty"`
	Width, Height                  uint16
}

// HelperReply answers a HelperRequest: an Error (as EncodeError writes it),
// or what the operation returns.
type HelperReply struct {
	Error string `json:",omitempty"`
	// PID and CgroupPaths are the created init's.
	PID         int               `json:",omitempty"`
	CgroupPaths map[string]string `json:",omitempty"`
	// ExitCode is how exec's process ended.
	ExitCode int
}

// Err is the reply's error, with its errdefs kind, or nil.
func (r *HelperReply) Err() error {
	if r.Error == "" {
		return nil
	}
	return decodeKind("berth-runtime: ", r.Error)
}

// ExitCode is a wait status as the kubelet shows it: the exit status, or 128
// plus the signal that killed the process (and the signal's name).
func ExitCode(ws unix.WaitStatus) (int, string) {
	switch {
	case ws.Exited():
		return ws.ExitStatus(), ""
	case ws.Signaled():
		return 128 + int(ws.Signal()), ws.Signal().String()
	}
	return -1, ""
}
