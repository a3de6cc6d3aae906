package helper

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// A process with no timeout whose caller gives up is killed and reaped, and
// the exec fails with the caller's error.
func TestWaitExecKillsWhenTheCallerGivesUp(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reply, err := waitExec(ctx, cmd.Process, 0)
	if !errors.Is(err, context.Canceled) || reply.TimedOut {
		t.Fatalf("waitExec = %+v, %v; want context.Canceled", reply, err)
	}
	// Reaped: the pid is no child of ours any more.
	if _, err := syscall.Wait4(cmd.Process.Pid, nil, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Fatalf("the killed process was not reaped: wait4 = %v", err)
	}
}

// A process that ends by itself is reported with its exit code.
func TestWaitExecReportsTheExit(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reply, err := waitExec(context.Background(), cmd.Process, 0)
	if err != nil || reply.ExitCode != 3 {
		t.Fatalf("waitExec = %+v, %v", reply, err)
	}
}

var _ process = (*os.Process)(nil)
