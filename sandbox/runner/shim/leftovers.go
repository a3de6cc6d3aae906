package shim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// When the init of a container that shares a PID namespace (the pod's or
// the node's) exits, the kernel leaves what it started running: its
// children and the daemons it forked, reparented to the pod's pause or the
// shim. The container is over all the same, as for the peers (containerd's
// shim kills the init's cgroup then, runc kill --all), so the shim kills
// everything left in the container's cgroup before it reports the exit: a
// StopContainer that returned means nothing of the container runs. With a
// PID namespace of its own, the kernel kills them when the init dies.

const (
	// leftoverTimeout bounds the killing: a process stuck in the kernel
	// (uninterruptible sleep) cannot hold the exit back for ever.
	leftoverTimeout = 10 * time.Second
	// leftoverRetry is how long the shim waits for the killed to go before
	// it kills again what is left (a process forked past the kill).
	leftoverRetry = time.Second
	leftoverPoll  = 10 * time.Millisecond
)

// killLeftovers kills every process left in c's cgroup and returns once
// the cgroup is empty, or with an error after leftoverTimeout. The helper
// kills first (libcontainer: cgroup.kill, or on cgroup v1 freeze, kill
// each, thaw, so that nothing forks away); what is still there after
// leftoverRetry the shim kills itself, round after round.
func (cs *Containers) killLeftovers(id string, c *container) error {
	dir := membersDir(c.cgroupPaths)
	if dir == "" {
		return nil
	}
	deadline := time.Now().Add(leftoverTimeout)
	for round := 0; ; round++ {
		left := cgroupMembers(dir)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes left in %s after %v: %v", dir, leftoverTimeout, left)
		}
		if round == 0 {
			_, err := cs.helper(runner.HelperSignal, runner.HelperRequest{ID: id, Signal: int(syscall.SIGKILL)})
			if err != nil {
				fmt.Fprintf(os.Stderr, "berth-shim: container %s: kill what its init left: %v\n", id, err)
			}
		} else {
			for _, pid := range left {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
		retry := time.Now().Add(leftoverRetry)
		for len(cgroupMembers(dir)) > 0 && time.Now().Before(retry) && time.Now().Before(deadline) {
			time.Sleep(leftoverPoll)
		}
	}
}

// membersDir picks the container's cgroup to read its processes from: one
// of the v1 controllers that every process joins when there are any (the
// unified tree of a hybrid host is joined at best), else the v2 cgroup.
func membersDir(paths map[string]string) string {
	for _, k := range []string{"freezer", "pids", "memory", "cpu", ""} {
		if p, ok := paths[k]; ok {
			return p
		}
	}
	return ""
}

// cgroupMembers lists the processes in the cgroup dir and its descendants
// (zombies are not members); none if it is gone.
func cgroupMembers(dir string) []int {
	var pids []int
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			return nil
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if pid, err := strconv.Atoi(sc.Text()); err == nil && pid > 0 {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	return pids
}
