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
)

// hangPlugin starts a child that would outlive it and hangs.
const hangPlugin = `#!/bin/sh
sleep 1000 &
echo $! > "$PIDFILE"
wait
`

// A plugin that hangs past the deadline is killed with what it started,
// and the call returns a deadline error instead of waiting for them.
func TestPluginDeadlineKillsItsGroup(t *testing.T) {
	dir := t.TempDir()
	plugin, pidFile := filepath.Join(dir, "hang"), filepath.Join(dir, "pid")
	if err := os.WriteFile(plugin, []byte(hangPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	m := New(Options{PluginTimeout: 500 * time.Millisecond})
	ctx, cancel := m.pluginContext(context.Background())
	defer cancel()
	_, err := (&groupExec{}).ExecPlugin(ctx, plugin, nil, append(os.Environ(), "PIDFILE="+pidFile))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ExecPlugin = %v, want a deadline error", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	// The group's SIGKILL was sent before ExecPlugin returned; the child
	// (reparented, so not reaped by us) may still be on its way out. A
	// child that was not killed would sleep on past this generous bound.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		stat, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if syscall.Kill(pid, 0) != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's child %d still runs: %s", pid, stat)
		}
	}
}
