package runner

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// ServiceName is the net/rpc service berth-shim registers.
const ServiceName = "Shim"

// CreateArgs create a container from an OCI spec (JSON), logging to LogPath.
type CreateArgs struct {
	ID      string
	Spec    []byte
	LogPath string
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

// Exit is how a container's init ended.
type Exit struct {
	Code   int
	Signal string
	At     time.Time
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
	msg := err.Error()
	for _, k := range errorKinds {
		if rest, ok := strings.CutPrefix(msg, k.name+": "); ok {
			return fmt.Errorf("shim: %s: %w", rest, k.err)
		}
	}
	return fmt.Errorf("shim: %s", msg)
}
