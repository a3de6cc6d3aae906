package shim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/sandbox/runner/helper"
)

func runningContainer(t *testing.T, id string, args ...string) *Containers {
	t.Helper()
	rootfs, dir, cs := newTestContainers(t)
	startWith(t, cs, dir, id, testSpec(rootfs, id, args...), runner.IO{})
	return cs
}

// ExecSync is the runtime server's (helper.Exec): it runs in the containers
// a shim made, as their init's process.
func TestExec(t *testing.T) {
	cs := runningContainer(t, "e1", "/bin/sleep", "1000")
	exec := func(args []string, timeout time.Duration, limit int) (runner.ExecReply, error) {
		return helper.Exec(context.Background(), runner.ExecArgs{Root: cs.root, ID: "e1", Args: args, Timeout: timeout, Limit: limit})
	}
	res, err := exec([]string{"/bin/sh", "-c", "echo out; echo err >&2; exit 7"}, 30*time.Second, 1<<20)
	if err != nil || string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" || res.ExitCode != 7 || res.TimedOut {
		t.Fatalf("exec = %+v (stdout %q stderr %q), %v", res, res.Stdout, res.Stderr, err)
	}
	// Output beyond the limit is dropped, and the process still ends.
	res, err = exec([]string{"/bin/sh", "-c", "head -c 100000 /dev/zero"}, 30*time.Second, 1000)
	if err != nil || len(res.Stdout) != 1000 || res.ExitCode != 0 {
		t.Fatalf("capped exec: %d bytes, %+v, %v", len(res.Stdout), res.ExitCode, err)
	}
	// A timeout kills the process; nothing of it remains.
	start := time.Now()
	res, err = exec([]string{"/bin/sleep", "77"}, 300*time.Millisecond, 1000)
	if err != nil || !res.TimedOut || time.Since(start) > 10*time.Second {
		t.Fatalf("timed-out exec = %+v, %v after %v", res, err, time.Since(start))
	}
	res, err = exec([]string{"/bin/sh", "-c", "ps | grep 'sleep 77' | grep -v grep || true"}, 30*time.Second, 1<<20)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "" {
		t.Fatalf("the timed-out process remains: %q, %v", res.Stdout, err)
	}
	// With no timeout, a caller who gives up has the process killed too.
	gaveUp, cancel := context.WithCancel(context.Background())
	cancel() // the process still starts: Exec only looks at ctx as it waits
	_, err = helper.Exec(gaveUp, runner.ExecArgs{Root: cs.root, ID: "e1", Args: []string{"/bin/sleep", "78"}, Limit: 1000})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("exec whose caller gave up = %v, want context.Canceled", err)
	}
	res, err = exec([]string{"/bin/sh", "-c", "ps | grep 'sleep 78' | grep -v grep || true"}, 30*time.Second, 1<<20)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "" {
		t.Fatalf("the process of a caller who gave up remains: %q, %v", res.Stdout, err)
	}
	if _, err := exec(nil, time.Second, 10); err == nil {
		t.Fatal("exec without a command worked")
	}
	if _, err := helper.Exec(context.Background(), runner.ExecArgs{Root: cs.root, ID: "nope", Args: []string{"true"}}); !errdefs.IsNotFound(err) {
		t.Fatalf("exec in no container = %v, want NotFound", err)
	}
}

func TestExitIsRecordedAndPolled(t *testing.T) {
	cs := runningContainer(t, "x1", "/bin/sh", "-c", "sleep 0.3; exit 4")
	if ev := cs.Exits(0, 10*time.Millisecond); len(ev) != 0 {
		t.Fatalf("exits before any: %+v", ev)
	}
	ev := cs.Exits(0, 30*time.Second)
	if len(ev) != 1 || ev[0].ID != "x1" || ev[0].Exit.Code != 4 || ev[0].Exit.Reason != ReasonError {
		t.Fatalf("exits = %+v", ev)
	}
	rec, err := runner.ReadExit(cs.root, "x1")
	if err != nil || rec.Code != 4 || rec.Reason != ReasonError || rec.At.IsZero() {
		t.Fatalf("recorded exit = %+v, %v", rec, err)
	}
	if later := cs.Exits(ev[0].Seq, 10*time.Millisecond); len(later) != 0 {
		t.Fatalf("exits after the last = %+v", later)
	}
	if _, err := helper.Exec(context.Background(), runner.ExecArgs{Root: cs.root, ID: "x1", Args: []string{"/bin/true"}}); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("exec in an exited container = %v, want FailedPrecondition", err)
	}
}

func TestOOMKilledReason(t *testing.T) {
	rootfs := testRootfs(t)
	dir := t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), testRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	spec := testSpec(rootfs, "o1", "/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=200M count=1")
	limit := int64(32 << 20)
	spec.Linux.Resources = &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	if err := cs.Create("o1", spec, runner.IO{LogPath: filepath.Join(dir, "o1.log")}); err != nil {
		t.Fatal(err)
	}
	defer cs.Delete("o1")
	if err := cs.Start("o1"); err != nil {
		t.Fatal(err)
	}
	exit, done, err := cs.Wait("o1", 60*time.Second)
	if err != nil || !done || exit.Reason != ReasonOOMKilled {
		t.Fatalf("exit = %+v, done %v, %v", exit, done, err)
	}
}

func TestReopenLog(t *testing.T) {
	rootfs := testRootfs(t)
	dir := t.TempDir()
	cs, err := NewContainers(filepath.Join(dir, "state"), testRuntime(t))
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "r1.log")
	spec := testSpec(rootfs, "r1", "/bin/sh", "-c", "echo one; until [ -e /tmp/go ]; do sleep 0.05; done; echo two; sleep 1000")
	if err := cs.Create("r1", spec, runner.IO{LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	defer cs.Delete("r1")
	if err := cs.Start("r1"); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logPath, "one")
	if err := os.Rename(logPath, logPath+".1"); err != nil {
		t.Fatal(err)
	}
	if err := cs.ReopenLog("r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := helper.Exec(context.Background(), runner.ExecArgs{Root: cs.root, ID: "r1", Args: []string{"touch", "/tmp/go"}, Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, logPath, "two")
	if old, _ := os.ReadFile(logPath + ".1"); strings.Contains(string(old), "two") {
		t.Fatalf("rotated log got new records: %q", old)
	}
	// A symlink in the log's place is never followed.
	os.Remove(logPath)
	if err := os.Symlink(filepath.Join(dir, "elsewhere"), logPath); err != nil {
		t.Fatal(err)
	}
	if err := cs.ReopenLog("r1"); err == nil {
		t.Fatal("reopened through a symlink")
	}
	if err := cs.ReopenLog("nope"); err == nil {
		t.Fatal("reopened an unknown container's log")
	}
}

func waitForLog(t *testing.T, path, text string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), " F "+text+"\n") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q: %q", path, text, data)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
