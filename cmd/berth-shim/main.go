// Command berth-shim runs one pod's containers for berthd (see
// sandbox/runner/shim). main only parses flags and serves. It links no
// libcontainer: each operation on a container runs in a short-lived
// berth-runtime process (--runtime).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner/shim"
)

func main() {
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: berth-shim serve --socket PATH --root DIR --runtime PATH [--ready-fd N]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket to serve berthd on")
	root := fs.String("root", "", "libcontainer state dir")
	runtime := fs.String("runtime", "", "the berth-runtime binary")
	ready := fs.Int("ready-fd", 0, "descriptor to say \"ok\" on once serving")
	_ = fs.Parse(os.Args[2:])
	if *socket == "" || *root == "" || *runtime == "" {
		fmt.Fprintln(os.Stderr, "berth-shim: --socket, --root and --runtime are required")
		os.Exit(2)
	}
	// Orphaned processes of the pod's containers, and the inits of the
	// helpers that created them, are reparented to the shim.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim: subreaper:", err)
		os.Exit(1)
	}
	if *ready != 0 {
		unix.CloseOnExec(*ready) // no helper or container inherits it
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := shim.Serve(ctx, shim.Config{Socket: *socket, Root: *root, Runtime: *runtime, ReadyFD: *ready}); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		os.Exit(1)
	}
}
