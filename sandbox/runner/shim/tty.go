package shim

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// consoleSocket is a socket pair over which a container's init sends the
// master side of the pseudo-terminal it made its stdio.
func consoleSocket() (ours, theirs *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console-init"), nil
}

// receiveConsole reads the pty master the init sent on socket, and stops the
// terminal from turning "\n" into "\r\n", so that logs hold plain lines.
func receiveConsole(socket *os.File) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(int(socket.Fd()), name, oob, 0)
	if err != nil {
		return nil, fmt.Errorf("receive console: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive console: no file in the message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("receive console: want one file, got %d (%v)", len(fds), err)
	}
	unix.CloseOnExec(fds[0])
	// Non-blocking, so that the file is in Go's poller and closing it ends
	// a pending read.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		return nil, fmt.Errorf("receive console: %w", err)
	}
	master := os.NewFile(uintptr(fds[0]), string(name[:n]))
	if err := clearONLCR(master); err != nil {
		master.Close()
		return nil, err
	}
	return master, nil
}

func clearONLCR(f *os.File) error {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return fmt.Errorf("console termios: %w", err)
	}
	t.Oflag &^= unix.ONLCR
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		return fmt.Errorf("console termios: %w", err)
	}
	return nil
}
