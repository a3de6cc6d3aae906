package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ServiceName prefixes the methods of the shim protocol ("Shim.Create").
const ServiceName = "Shim"

// CreateArgs create a container from an OCI spec (JSON), its stdio wired as
// IO says.
type CreateArgs struct {
	ID   string
	Spec []byte
	IO   IO
}

// IO is how a container's init is wired: its stdout and stderr (or, when the
// spec asks for a terminal, the terminal's output, as stdout) are logged to
// LogPath in the CRI format. With Stdin, its stdin is a pipe (or the
// terminal) the shim holds open; without, it reads /dev/null.
type IO struct {
	LogPath string
	Stdin   bool
	// StdinOnce closes the container's stdin once the first attached
	// session's stdin ends.
	StdinOnce bool
}

// UpdateArgs set a container's cgroup resources.
type UpdateArgs struct {
	ID        string
	Resources specs.LinuxResources
}

// IDArgs name a container.
type IDArgs struct{ ID string }

// SignalArgs send a signal to a container's init.
type SignalArgs struct {
	ID     string
	Signal int
}

// WaitArgs wait at most Timeout for a container to exit (0: just look).
type WaitArgs struct {
	ID      string
	Timeout time.Duration
}

// Exit is how a container's init ended; Reason is Completed, Error or
// OOMKilled.
type Exit struct {
	Code   int
	Signal string
	Reason string
	At     time.Time
}

// ExitFile is where the shim serving with state root records container id's
// exit (JSON Exit), before it reports the exit.
func ExitFile(root, id string) string { return filepath.Join(root, "exits", id+".json") }

// ReadExit reads an exit the shim recorded (see ExitFile).
func ReadExit(root, id string) (Exit, error) {
	var e Exit
	data, err := os.ReadFile(ExitFile(root, id))
	if err != nil {
		return e, err
	}
	return e, json.Unmarshal(data, &e)
}

// ExitsArgs ask for the exits numbered after After, waiting up to Timeout
// when there is none yet.
type ExitsArgs struct {
	After   uint64
	Timeout time.Duration
}

// ExitEvent is one container's exit; Seq orders them within one shim.
type ExitEvent struct {
	ID   string
	Seq  uint64
	Exit Exit
}

// ExitsReply lists exits (empty when the wait timed out).
type ExitsReply struct{ Exits []ExitEvent }

// ExecArgs run Args in running container ID of the shim whose state is
// under Root, as its init's user, env and working dir; each output stream is
// capped at Limit bytes; the process is killed after Timeout (0: no
// timeout). The runtime server answers it (runtime.go), not the shim.
type ExecArgs struct {
	Root    string
	ID      string
	Args    []string
	Timeout time.Duration
	Limit   int
}

// ExecReply is an exec'd process's output and exit code.
type ExecReply struct {
	Stdout, Stderr []byte
	ExitCode       int
	TimedOut       bool
}

// ExecStartArgs start an interactive process (ExecID names the session) in a
// running container. Its streams are FIFOs the caller made and opened first
// (stdin for writing, the outputs for reading); "" leaves a stream out. With
// TTY the process gets a terminal of Width x Height, whose output goes to
// Stdout.
type ExecStartArgs struct {
	ID, ExecID            string
	Args                  []string
	TTY                   bool
	Stdin, Stdout, Stderr string
	Width, Height         uint16
}

// ExecIDArgs name an exec session.
type ExecIDArgs struct{ ExecID string }

// ExecWaitArgs wait at most Timeout for an exec session's process to exit.
type ExecWaitArgs struct {
	ExecID  string
	Timeout time.Duration
}

// ExecWaitReply says whether the process exited, and its exit code.
type ExecWaitReply struct {
	Exited   bool
	ExitCode int
}

// ResizeArgs set the terminal size of an exec session, or (ExecID "") of
// container ID.
type ResizeArgs struct {
	ID, ExecID    string
	Width, Height uint16
}

// AttachArgs attach a session's FIFOs (see ExecStartArgs) to a running
// container's stdio.
type AttachArgs struct {
	ID                    string
	Stdin, Stdout, Stderr string
}

// WaitReply says whether the container exited, and how.
type WaitReply struct {
	Exited bool
	Exit   Exit
}

// Empty is the reply of calls that return nothing.
type Empty struct{}

var errorKinds = []struct {
	name string
	err  error
}{
	{"NotFound", errdefs.ErrNotFound},
	{"AlreadyExists", errdefs.ErrAlreadyExists},
	{"InvalidArgument", errdefs.ErrInvalidArgument},
	{"FailedPrecondition", errdefs.ErrFailedPrecondition},
	{"Unavailable", errdefs.ErrUnavailable},
}

// EncodeError prefixes err's message with its errdefs kind, for the wire.
func EncodeError(err error) error {
	if err == nil {
		return nil
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return errors.New(k.name + ": " + err.Error())
		}
	}
	return err
}

// decodeError turns a wire error back into one that wraps its kind.
func decodeError(err error) error {
	if err == nil {
		return nil
	}
	return decodeKind("shim: ", err.Error())
}

// decodeKind turns an encoded message into an error that wraps its kind,
// prefixed with who said it.
func decodeKind(who, msg string) error {
	for _, k := range errorKinds {
		if rest, ok := strings.CutPrefix(msg, k.name+": "); ok {
			return fmt.Errorf("%s%s: %w", who, rest, k.err)
		}
	}
	return fmt.Errorf("%s%s", who, msg)
}

// PauseArgs say how the pod's pause runs: in the pod's own user namespace
// (UserNS, the path of its pin) when it has one, so that the PID namespace
// the pause makes is owned by it, else in the shim's; with the pod's SELinux
// process and mount labels on an SELinux host.
type PauseArgs struct{ UserNS, ProcessLabel, MountLabel string }

// The environment in which the shim passes the pause ("berth-runtime pause",
// package pausens) its descriptors and labels.
const (
	// PauseRootEnv names the descriptor of the empty dir its root is
	// mounted on.
	PauseRootEnv = "_BERTH_PAUSE_ROOT"
	// PauseUsernsEnv names a descriptor of the user namespace to enter, and
	// PausePIDFDEnv the one to write the pause's pid to from there.
	PauseUsernsEnv = "_BERTH_PAUSE_USERNS"
	PausePIDFDEnv  = "_BERTH_PAUSE_PIDFD"
	// PauseReportEnv names the write end of a pipe on which the pause says
	// "ok" once it is set up, or which step failed.
	PauseReportEnv = "_BERTH_PAUSE_REPORT"
	// PauseLabelEnv and PauseMountLabelEnv hold the pod's SELinux labels,
	// if any.
	PauseLabelEnv      = "_BERTH_PAUSE_LABEL"
	PauseMountLabelEnv = "_BERTH_PAUSE_MOUNT_LABEL"
)

// PauseReply carries the pid of the pod's pause process, PID 1 of the pod's
// shared PID namespace (/proc/<pid>/ns/pid is the namespace to join).
type PauseReply struct{ PID int }

// ListReply lists the IDs of the containers a shim holds.
type ListReply struct{ IDs []string }
