package shim

import (
	"bytes"
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

// ReapOrphans reaps orphaned zombies whenever a child exits, until stop
// closes; and again when a reap was deferred for processes starting.
func (cs *Containers) ReapOrphans(stop <-chan struct{}) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD)
	defer signal.Stop(sigs)
	for {
		select {
		case <-stop:
			return
		case <-sigs:
		case <-cs.reapAgain:
		}
		cs.reapOnce()
	}
}

// reapOnce reaps the zombie children that no waiter of the shim's waits
// for. A zombie that is not registered may still be a process between its
// start and its registration (a helper, or an init whose create helper has
// just exited): while any is starting, it defers to endStart. The zombies
// are listed without a lock; a pid listed, reaped by its waiter and reused
// meanwhile is either registered or starting by the time cs.mu is taken.
func (cs *Containers) reapOnce() {
	zombies := zombieChildren(os.Getpid())
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.starting > 0 {
		cs.reapDeferred = true
		return
	}
	for _, pid := range zombies {
		if !cs.waited[pid] {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		}
	}
}

// beginStart counts a process as starting, until endStart.
func (cs *Containers) beginStart() {
	cs.mu.Lock()
	cs.starting++
	cs.mu.Unlock()
}

// endStart ends a beginStart, and has the reaper run again if it deferred
// while processes were starting.
func (cs *Containers) endStart() {
	cs.mu.Lock()
	cs.starting--
	again := cs.starting == 0 && cs.reapDeferred
	if again {
		cs.reapDeferred = false
	}
	cs.mu.Unlock()
	if again {
		select {
		case cs.reapAgain <- struct{}{}:
		default: // one is pending already
		}
	}
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
