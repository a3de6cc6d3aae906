package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/log"
)

// A plugin outlives a berthd that is killed while it runs (each plugin has a
// process group of its own, and nothing ends it), and it goes on working on
// the node: an ADD left running sets up a pod's masquerade rules after the
// next berthd's recovery has DELeted the pod (the bridge plugin removes them
// only on a DEL that finds the pod's interface), a DEL left running races a
// DEL of the recovery. So each plugin that runs is noted in the cache dir
// (running/<pid>: its start time and deadline; a plain file, as a node that
// reboots ends the plugin too), the note dropped once it has been waited for;
// and before it detaches anything, the next berthd waits for the plugins of
// the last one to end, up to their deadline, then kills what is left of
// their process groups.

func (m *Manager) runningDir() string { return filepath.Join(m.opts.CacheDir, "running") }

// noteRunning notes a plugin that runs until deadline; the returned func
// drops the note.
func (m *Manager) noteRunning(pid int, deadline time.Time) func() {
	if m.opts.CacheDir == "" {
		return func() {}
	}
	start, err := processStart(pid)
	if err != nil {
		return func() {} // it is gone already
	}
	path := filepath.Join(m.runningDir(), strconv.Itoa(pid))
	// A note that cannot be written costs only the wait for this plugin
	// after a crash; the plugin runs all the same.
	if os.MkdirAll(m.runningDir(), 0o700) == nil {
		_ = os.WriteFile(path, fmt.Appendf(nil, "%d %d\n", start, deadline.Unix()), 0o600)
	}
	return func() { _ = os.Remove(path) }
}

// orphan is a plugin a former berthd left running.
type orphan struct {
	pid             int
	start, deadline int64
	note            string
}

// awaitOrphans waits for the plugins a former berthd left running to end,
// all at once, killing the process group of each that reaches its deadline,
// and drops their notes.
func (m *Manager) awaitOrphans(ctx context.Context) {
	left := m.orphans(ctx)
	if len(left) > 0 {
		log.G(ctx).WithField("plugins", len(left)).Info("waiting for the CNI plugins the last berthd left running")
	}
	for len(left) > 0 && ctx.Err() == nil {
		var still []orphan
		for _, o := range left {
			if s, err := processStart(o.pid); err != nil || s != o.start {
				_ = os.Remove(o.note)
				continue
			}
			if time.Now().Unix() >= o.deadline {
				log.G(ctx).WithField("pid", o.pid).Warn("killing a CNI plugin the last berthd left running, past its deadline")
				_ = syscall.Kill(-o.pid, syscall.SIGKILL)
			}
			still = append(still, o)
		}
		left = still
		if len(left) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// orphans reads the notes of plugins that may still run; unreadable ones
// are dropped.
func (m *Manager) orphans(ctx context.Context) []orphan {
	entries, err := os.ReadDir(m.runningDir())
	if err != nil {
		return nil
	}
	var out []orphan
	for _, e := range entries {
		o := orphan{note: filepath.Join(m.runningDir(), e.Name())}
		data, err := os.ReadFile(o.note)
		if err == nil {
			o.pid, err = strconv.Atoi(e.Name())
		}
		if err == nil {
			_, err = fmt.Sscanf(string(data), "%d %d", &o.start, &o.deadline)
		}
		if err != nil {
			log.G(ctx).WithError(err).WithField("note", o.note).Warn("unreadable note of a running CNI plugin")
			_ = os.Remove(o.note)
			continue
		}
		out = append(out, o)
	}
	return out
}

// processStart is a process's start time, in clock ticks since boot (field
// 22 of /proc/<pid>/stat): with the pid, it names one process.
func processStart(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command (field 2) is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, errors.New("malformed stat")
	}
	return strconv.ParseInt(fields[19], 10, 64)
}
