package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Namespace kinds a pod may get its own of.
const (
	NetNS = "net"
	IPCNS = "ipc"
	UTSNS = "uts"
)

var cloneFlags = map[string]uintptr{NetNS: unix.CLONE_NEWNET, IPCNS: unix.CLONE_NEWIPC, UTSNS: unix.CLONE_NEWUTS}

// PinNamespaces creates new namespaces of the given kinds and pins each at
// dir/<kind>; a new UTS namespace gets hostname, and sysctls (validated by
// ValidateSysctls) are set in the new namespaces. It returns the pin paths by
// kind. On error nothing stays pinned.
func PinNamespaces(dir string, kinds []string, hostname string, sysctls map[string]string) (pins map[string]string, retErr error) {
	var flags uintptr
	for _, k := range kinds {
		f, ok := cloneFlags[k]
		if !ok {
			return nil, fmt.Errorf("unknown namespace kind %q", k)
		}
		flags |= f
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pins = map[string]string{}
	defer func() {
		if retErr != nil {
			_ = UnpinNamespaces(pins)
		}
	}()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := saveNamespaces(kinds)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = pinOnThisThread(dir, kinds, flags, hostname, pins)
		if err == nil {
			err = writeSysctls(sysctls)
		}
		// Back to the thread's own namespaces before anyone goes on. If that
		// fails the thread stays locked and dies with this goroutine (the
		// runtime parks it instead if it is the main thread).
		if restore() == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return pins, <-errc
}

// saveNamespaces opens the calling thread's namespaces of the given kinds and
// returns a function that moves the thread back into them.
func saveNamespaces(kinds []string) (func() error, error) {
	fds := map[string]int{}
	for _, k := range kinds {
		fd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", unix.Gettid(), k), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return nil, fmt.Errorf("open own %s namespace: %w", k, err)
		}
		fds[k] = fd
	}
	return func() error {
		var errs []error
		for k, fd := range fds {
			if err := unix.Setns(fd, int(cloneFlags[k])); err != nil {
				errs = append(errs, fmt.Errorf("return to own %s namespace: %w", k, err))
			}
			unix.Close(fd)
		}
		return errors.Join(errs...)
	}, nil
}

func pinOnThisThread(dir string, kinds []string, flags uintptr, hostname string, pins map[string]string) error {
	if err := unix.Unshare(int(flags)); err != nil {
		return fmt.Errorf("unshare namespaces: %w", err)
	}
	if flags&unix.CLONE_NEWNET != 0 {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", hostname, err)
		}
	}
	tid := unix.Gettid()
	for _, k := range kinds {
		pin := filepath.Join(dir, k)
		f, err := os.OpenFile(pin, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o400)
		if err != nil {
			return fmt.Errorf("create %s pin: %w", k, err)
		}
		f.Close()
		pins[k] = pin
		src := fmt.Sprintf("/proc/%d/task/%d/ns/%s", os.Getpid(), tid, k)
		if err := unix.Mount(src, pin, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s namespace: %w", k, err)
		}
	}
	return nil
}

// loopbackUp brings lo up in the calling thread's network namespace (the
// netlink socket is made in it), so that no CNI loopback plugin has to run.
func loopbackUp() error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// UnpinNamespaces unmounts and removes pins; missing or unmounted pins are fine.
func UnpinNamespaces(pins map[string]string) error {
	var errs []error
	for _, pin := range pins {
		if err := unix.Unmount(pin, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", pin, err))
			continue
		}
		if err := os.Remove(pin); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
