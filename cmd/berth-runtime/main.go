// Command berth-runtime is Berth's libcontainer side: berth-shim runs it for
// each operation on a container ("berth-runtime create|exec|update|signal|
// delete", package runner/helper), berthd runs it as the runtime
// server that answers ExecSync ("berth-runtime serve --socket PATH", its
// lifeline on fd 3, "ok" on fd 4 once it listens), it is the containers' init
// (libcontainer re-executes it with "init"), the pods' pause ("berth-runtime
// pause", package pausens, in C) and berthd's user-namespace holder
// ("berth-runtime hold", package holder).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	_ "github.com/opencontainers/runc/libcontainer/nsenter" // the init's namespace setup, run before Go starts
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/holder"
	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/sandbox/runner/helper"
	_ "github.com/berth-cri/berth/sandbox/runner/pausens" // the pause, run before Go starts
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
	if len(os.Args) == 4 && os.Args[1] == "serve" && os.Args[2] == "--socket" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		unix.CloseOnExec(3) // no container process holds the lifeline
		unix.CloseOnExec(4)
		if err := helper.Serve(ctx, os.Args[3], os.NewFile(3, "lifeline"), 4); err != nil {
			fmt.Fprintln(os.Stderr, "berth-runtime:", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) == 2 {
		switch os.Args[1] {
		case runner.HelperCreate, runner.HelperExec, runner.HelperUpdate, runner.HelperSignal,
			runner.HelperDelete:
			os.Exit(helper.Main(os.Args[1]))
		}
	}
	fmt.Fprintln(os.Stderr, "usage: berth-runtime create|exec|update|signal|delete < request, serve --socket PATH, or hold FLAGS")
	os.Exit(2)
}
