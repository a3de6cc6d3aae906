package runner

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// A unix socket path must fit in sun_path (108 bytes), but a shim's socket
// lives under the state dir and the pod's 64-character ID. Both ends reach it
// through /proc/self/fd/<dir fd>/<name>, which is short whatever the dir.

// ListenUnix listens on the unix socket at path, however long path is.
func ListenUnix(path string) (net.Listener, error) {
	var l net.Listener
	err := viaDirFD(path, func(short string) error {
		var err error
		ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: short, Net: "unix"})
		if err != nil {
			return err
		}
		// The short name means nothing once the dir fd is closed: never
		// unlink through it. Whoever removes the dir removes the socket.
		ul.SetUnlinkOnClose(false)
		l = ul
		return nil
	})
	return l, err
}

// DialUnix connects to the unix socket at path, however long path is.
func DialUnix(ctx context.Context, path string) (net.Conn, error) {
	var conn net.Conn
	err := viaDirFD(path, func(short string) error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, "unix", short)
		return err
	})
	return conn, err
}

func viaDirFD(path string, fn func(short string) error) error {
	dir, err := os.OpenFile(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer dir.Close()
	return fn(fmt.Sprintf("/proc/self/fd/%d/%s", dir.Fd(), filepath.Base(path)))
}
