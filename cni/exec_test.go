package cni

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-cri/berth/test/wait"
)

// hangPlugin starts a child that would outlive it and hangs.
const hangPlugin = `#!/bin/sh
sleep 1000 &
echo $! > "$PIDFILE"
wait
`

// A plugin that hangs past the deadline is killed with what it started,
// and the call returns a deadline error instead of waiting for them. The
// deadline is the test's to end (once the plugin's child runs): a fixed
// short one could pass, on a busy host, before the plugin forked at all.
func TestPluginDeadlineKillsItsGroup(t *testing.T) {
	dir := t.TempDir()
	plugin, pidFile := filepath.Join(dir, "hang"), filepath.Join(dir, "pid")
	if err := os.WriteFile(plugin, []byte(hangPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	m := New(Options{PluginTimeout: time.Minute})
	parent, expire := context.WithCancelCause(context.Background())
	ctx, cancel := m.pluginContext(parent)
	defer cancel()
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
		t.Fatalf("plugin context deadline %v (%v), want within the plugin timeout", dl, ok)
	}
	done := make(chan error, 1)
	go func() {
		_, err := (&groupExec{}).ExecPlugin(ctx, plugin, nil, append(os.Environ(), "PIDFILE="+pidFile))
		done <- err
	}()
	wait.Until(t, "the plugin's child to start", func() bool { data, _ := os.ReadFile(pidFile); return strings.HasSuffix(string(data), "\n") })
	expire(context.DeadlineExceeded)
	if err := wait.Receive(t, "ExecPlugin", done); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ExecPlugin = %v, want a deadline error", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	// The group's SIGKILL was sent before ExecPlugin returned; the child
	// (reparented, so not reaped by us) may still be on its way out.
	wait.Until(t, "the end of the plugin's child", func() bool {
		stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		return syscall.Kill(pid, 0) != nil || strings.Contains(string(stat), ") Z ")
	})
}
