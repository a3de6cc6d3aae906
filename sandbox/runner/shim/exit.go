package shim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/berth-cri/berth/sandbox/runner"
)

// Exit reasons, as the kubelet shows them.
const (
	ReasonCompleted = "Completed"
	ReasonError     = "Error"
	ReasonOOMKilled = "OOMKilled"
)

// writeExit records e in runner.ExitFile durably (temp file, fsync, rename,
// fsync of the dir) before the exit is reported, so that berthd learns how a
// container ended even if the shim dies before berthd asks.
func (cs *Containers) writeExit(id string, e Exit) error {
	file := runner.ExitFile(cs.root, id)
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	data, err := json.Marshal(wireExit(e))
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+id+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// exitReason is OOMKilled when the kernel's OOM killer killed a process of
// the container's memory cgroup, else Completed or Error by exit code.
func exitReason(code int, cgroupPaths map[string]string) string {
	if oomKills(cgroupPaths) > 0 {
		return ReasonOOMKilled
	}
	if code == 0 {
		return ReasonCompleted
	}
	return ReasonError
}

// oomKills reads the oom_kill counter of the container's memory cgroup:
// memory.oom_control on cgroup v1, memory.events on v2 (the unified path has
// the key "").
func oomKills(paths map[string]string) int {
	if p, ok := paths["memory"]; ok {
		return counter(filepath.Join(p, "memory.oom_control"), "oom_kill")
	}
	if p, ok := paths[""]; ok {
		return counter(filepath.Join(p, "memory.events"), "oom_kill")
	}
	return 0
}

// counter reads "key value" from a cgroup flat-keyed file; 0 if absent.
func counter(file, key string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == key {
			n, _ := strconv.Atoi(string(v))
			return n
		}
	}
	return 0
}

// ExitEvent is one container's exit, numbered in the order the shim saw them.
type ExitEvent struct {
	ID   string
	Seq  uint64
	Exit Exit
}

// Exits returns the exits numbered after seq, waiting up to timeout for one
// when there is none yet.
func (cs *Containers) Exits(after uint64, timeout time.Duration) []ExitEvent {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		cs.mu.Lock()
		events := cs.exitsAfter(after)
		changed := cs.changed
		cs.mu.Unlock()
		if len(events) > 0 {
			return events
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil
		}
	}
}

// exitsAfter lists the exits after seq; cs.mu is held.
func (cs *Containers) exitsAfter(seq uint64) []ExitEvent {
	var out []ExitEvent
	for id, c := range cs.ctrs {
		if c.exitSeq > seq {
			out = append(out, ExitEvent{ID: id, Seq: c.exitSeq, Exit: c.exit})
		}
	}
	return out
}

// noteExit numbers c's exit and wakes the Exits waiters.
func (cs *Containers) noteExit(c *container, e Exit) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.seq++
	c.exit, c.exitSeq = e, cs.seq
	close(c.exited)
	close(cs.changed)
	cs.changed = make(chan struct{})
}
