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

// NamespaceRequest is what a pod's namespaces are made with.
type NamespaceRequest struct {
	Kinds    []string // of NetNS, IPCNS, UTSNS
	Hostname string   // set in a new UTS namespace
	Sysctls  map[string]string
	// UserNS, when set, is a user namespace of the pod's own, which owns
	// the pod's other namespaces (pinned at dir/user).
	UserNS *UserNamespace
}

// PinNamespaces creates new namespaces of the requested kinds and pins each at
// dir/<kind>; a new UTS namespace gets the hostname, and the sysctls
// (validated by ValidateSysctls) are set in the new namespaces. With a user
// namespace, holder is the binary that holds the namespaces while they are
// pinned (see startHolder). It returns the pin paths by kind. On error
// nothing stays pinned.
func PinNamespaces(dir string, req NamespaceRequest, holder string) (pins map[string]string, retErr error) {
	var flags uintptr
	for _, k := range req.Kinds {
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
	if req.UserNS == nil {
		return pins, onThread(req.Kinds, func() error {
			if err := unix.Unshare(int(flags)); err != nil {
				return fmt.Errorf("unshare namespaces: %w", err)
			}
			if err := pinAll(dir, req.Kinds, fmt.Sprintf("/proc/%d/task/%d/ns", os.Getpid(), unix.Gettid()), pins); err != nil {
				return err
			}
			return configure(flags, req)
		})
	}
	nsDir, release, err := startHolder(holder, flags, req.UserNS)
	if err != nil {
		return pins, err
	}
	err = pinAll(dir, append([]string{UserNS}, req.Kinds...), nsDir, pins)
	release()
	if err != nil {
		return pins, err
	}
	return pins, onThread(req.Kinds, func() error {
		if err := enter(pins, req.Kinds); err != nil {
			return err
		}
		return configure(flags, req)
	})
}

// onThread runs fn on a locked OS thread that is moved back into its own
// namespaces of the given kinds afterwards. If that fails the thread stays
// locked and dies with its goroutine (the runtime parks it instead if it is
// the main thread).
func onThread(kinds []string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		restore, err := saveNamespaces(kinds)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = fn()
		if restore() == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
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

// enter moves the calling thread into the pinned namespaces of the given kinds.
func enter(pins map[string]string, kinds []string) error {
	for _, k := range kinds {
		fd, err := unix.Open(pins[k], unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s pin: %w", k, err)
		}
		err = unix.Setns(fd, int(cloneFlags[k]))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("enter pod's %s namespace: %w", k, err)
		}
	}
	return nil
}

// configure sets up the namespaces the calling thread is in: loopback up,
// the hostname, the sysctls.
func configure(flags uintptr, req NamespaceRequest) error {
	if flags&unix.CLONE_NEWNET != 0 {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	if flags&unix.CLONE_NEWUTS != 0 && req.Hostname != "" {
		if err := unix.Sethostname([]byte(req.Hostname)); err != nil {
			return fmt.Errorf("set hostname %q: %w", req.Hostname, err)
		}
	}
	return writeSysctls(req.Sysctls)
}

// pinAll bind-mounts nsDir/<kind> (a /proc/.../ns directory) on dir/<kind>
// for each kind, recording each pin made in pins.
func pinAll(dir string, kinds []string, nsDir string, pins map[string]string) error {
	for _, k := range kinds {
		pin := filepath.Join(dir, k)
		f, err := os.OpenFile(pin, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o400)
		if err != nil {
			return fmt.Errorf("create %s pin: %w", k, err)
		}
		f.Close()
		pins[k] = pin
		if err := unix.Mount(nsDir+"/"+k, pin, "", unix.MS_BIND, ""); err != nil {
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
