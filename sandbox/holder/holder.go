// Package holder is berthd's holder of a pod's new user namespace
// ("berth-runtime hold FLAGS"): berthd starts it in the new namespace as its root, it
// unshares the pod's other namespaces there (so that the pod's root made
// them: an IPC namespace's mqueue filesystem belongs to its maker), reports,
// and lives while berthd pins them. See sandbox.PinNamespaces.
package holder

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Run becomes the root of its user namespace (it starts as the host's root,
// which is nobody there; it becomes root only after exec, since the host's
// root may reach its binary where the pod's may not), unshares the
// namespaces of the clone flags (decimal) on a thread of its own, says "ok
// <that thread's id>" (berthd pins /proc/<pid>/task/<tid>/ns/...) or what
// failed on fd 4, then waits for EOF on fd 3; it returns the exit status.
func Run(flags string) int {
	runtime.LockOSThread() // the thread stays, in the new namespaces, until Run returns
	ready := os.NewFile(4, "ready")
	f, err := strconv.ParseUint(flags, 10, 32)
	if err == nil {
		err = becomeRoot()
	}
	if err == nil && f != 0 {
		err = unix.Unshare(int(f))
	}
	if err != nil {
		fmt.Fprintf(ready, "hold %s: %v", flags, err)
		return 1
	}
	fmt.Fprintf(ready, "ok %d", unix.Gettid())
	ready.Close()
	_, _ = os.NewFile(3, "lifeline").Read(make([]byte, 1))
	return 0
}

// becomeRoot sets every thread's IDs to the user namespace's root (package
// syscall's calls apply to all threads of a Go program).
func becomeRoot() error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(0, 0, 0); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(0, 0, 0); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	return nil
}
