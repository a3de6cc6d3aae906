// Command berth-shim runs one pod's containers for berthd (see
// sandbox/runner/shim). main only parses flags and serves; the binary is also
// the containers' init (libcontainer re-executes it with "init").
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // the init's namespace setup, run before Go starts
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/holder"
	"github.com/berth-cri/berth/sandbox/runner/shim"
)

// The one init() Berth allows: libcontainer's re-exec entry.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "hold" {
		os.Exit(holder.Run(os.Args[2]))
	}
	// (A pause, "berth-shim pause", never gets here: it runs in the
	// constructor of package pausens.)
	if len(os.Args) < 2 || os.Args[1] != "serve" {
		fmt.Fprintln(os.Stderr, "usage: berth-shim serve --socket PATH --root DIR")
		os.Exit(2)
	}
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket to serve berthd on")
	root := fs.String("root", "", "libcontainer state dir")
	_ = fs.Parse(os.Args[2:])
	if *socket == "" || *root == "" {
		fmt.Fprintln(os.Stderr, "berth-shim: --socket and --root are required")
		os.Exit(2)
	}
	// Orphaned processes of the pod's containers are reparented to the shim.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim: subreaper:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := shim.Serve(ctx, *socket, *root); err != nil {
		fmt.Fprintln(os.Stderr, "berth-shim:", err)
		os.Exit(1)
	}
}
