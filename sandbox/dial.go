package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"syscall"

	"github.com/vishvananda/netns"
)

// DialPort connects to TCP port on the loopback of the network namespace
// pinned at pin ("" is the host's): 127.0.0.1, then ::1. The socket is made
// on a thread that entered the namespace (a socket stays in the namespace it
// was made in), and the thread goes back before it is released.
func DialPort(ctx context.Context, pin string, port int32) (net.Conn, error) {
	if port <= 0 || port > 65535 {
		return nil, fmt.Errorf("port %d out of range", port)
	}
	dial := func() (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))))
		if err != nil && errors.Is(err, syscall.ECONNREFUSED) {
			if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(int(port)))); err6 == nil {
				return c6, nil
			}
		}
		return conn, err
	}
	if pin == "" {
		return dial()
	}
	return inNetNS(pin, dial)
}

// inNetNS runs fn on a locked thread inside the network namespace at pin.
func inNetNS(pin string, fn func() (net.Conn, error)) (net.Conn, error) {
	target, err := netns.GetFromPath(pin)
	if err != nil {
		return nil, fmt.Errorf("network namespace %s: %w", pin, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	own, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer own.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter %s: %w", pin, err)
	}
	conn, err := fn()
	if serr := netns.Set(own); serr != nil {
		// The thread stays locked and dies with the goroutine.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("leave %s: %w", pin, serr)
	}
	runtime.UnlockOSThread()
	return conn, err
}
