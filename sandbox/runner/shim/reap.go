package shim

import (
	"bytes"
	"maps"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// As a child subreaper, the shim inherits the processes that outlive their
// parents in its containers (e.g. what is left in a PID namespace whose init
// exited). They must be reaped, but not the containers' inits (each one's
// waiter reaps it and needs its status) nor the helpers (exec.Cmd waits for
// them). A blanket wait(-1) would steal them, so the reaper looks for zombie
// children in /proc and reaps only those that are neither.

// ReapOrphans reaps orphaned zombies whenever a child exits, until stop closes.
func (cs *Containers) ReapOrphans(stop <-chan struct{}) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		select {
		case <-stop:
			return
		case <-sigs:
			cs.reapOnce()
		}
	}
}

func (cs *Containers) reapOnce() {
	cs.startMu.Lock() // no helper or init is between its start and registration
	defer cs.startMu.Unlock()
	waited := cs.waitedPids()
	for _, pid := range zombieChildren(os.Getpid()) {
		if !waited[pid] {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}

func (cs *Containers) waitedPids() map[int]bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return maps.Clone(cs.waited)
}

// zombieChildren lists the zombie processes whose parent is ppid.
func zombieChildren(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(stat[i+1:])
		if len(f) > 1 && string(f[0]) == "Z" && string(f[1]) == strconv.Itoa(ppid) {
			out = append(out, pid)
		}
	}
	return out
}
