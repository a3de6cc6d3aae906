package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// DefaultPluginTimeout bounds one CNI operation (ADD, DEL, CHECK, STATUS or
// GC of a whole network list) when Options.PluginTimeout is zero. The
// kubelet gives RunPodSandbox 4 minutes: an ADD that timed out still leaves
// time for its undo.
const DefaultPluginTimeout = 2 * time.Minute

// waitDelay is how long a killed plugin's output may stay open (something it
// started outside its process group holds it) before the call returns anyway.
const waitDelay = 5 * time.Second

// pluginContext bounds one CNI operation.
func (m *Manager) pluginContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, m.pluginTimeout())
}

// undoContext is a fresh context for undoing a failed ADD: the caller's
// values, not its cancellation (its deadline is often why the ADD failed),
// and room for two operations (the DEL of the failed ADD, then of whatever is
// cached).
func (m *Manager) undoContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 2*m.pluginTimeout())
}

func (m *Manager) pluginTimeout() time.Duration {
	if m.opts.PluginTimeout > 0 {
		return m.opts.PluginTimeout
	}
	return DefaultPluginTimeout
}

// groupExec runs plugins as libcni's RawExec does, but each in a process
// group of its own that is killed whole when the operation's context ends: a
// plugin's children (a shell plugin's commands, an IPAM it execs) would
// otherwise keep running and hold its stdout open, and the call with it.
type groupExec struct {
	invoke.RawExec
	version.PluginDecoder
	// running notes a started plugin until the returned func (orphans.go).
	running func(pid int, deadline time.Time) func()
}

// ExecPlugin runs one plugin; a plugin that fails reports a CNI error.
func (e *groupExec) ExecPlugin(ctx context.Context, pluginPath string, stdin []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	for range 6 { // a plugin binary being replaced is "text file busy" for a moment
		stdout.Reset()
		stderr.Reset()
		cmd := exec.CommandContext(ctx, pluginPath)
		cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = environ, bytes.NewReader(stdin), &stdout, &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = waitDelay
		err := e.run(ctx, cmd)
		if err == nil {
			return stdout.Bytes(), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("CNI plugin %s killed: %w", pluginPath, context.Cause(ctx))
		}
		if !errors.Is(err, syscall.ETXTBSY) && !strings.Contains(err.Error(), "text file busy") {
			return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("CNI plugin %s: text file busy", pluginPath)
}

// run runs cmd, noted as running meanwhile.
func (e *groupExec) run(ctx context.Context, cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	if e.running != nil {
		deadline, ok := ctx.Deadline()
		if !ok {
			deadline = time.Now().Add(DefaultPluginTimeout)
		}
		defer e.running(cmd.Process.Pid, deadline)()
	}
	return cmd.Wait()
}

// pluginError is the CNI error a failed plugin printed, else what it wrote
// to stderr.
func pluginError(err error, stdout, stderr []byte) error {
	e := &types.Error{}
	switch {
	case len(stdout) > 0:
		if jerr := json.Unmarshal(stdout, e); jerr != nil {
			e.Msg = fmt.Sprintf("netplugin failed but its error %q is unreadable: %v", stdout, jerr)
		}
	case len(stderr) > 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q", stderr)
	default:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	}
	return e
}
