package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Kill kills every process in the cgroup at path and its descendants, on
// cgroup v2 with cgroup.kill, on v1 by freezing the cgroup (when the freezer
// controller is mounted), SIGKILLing each member and thawing it. It returns
// once the cgroup is empty, or with an error after timeout. Used when a
// container's shim is gone and nothing else holds its processes.
func Kill(path string, timeout time.Duration) error {
	return kill(mountRoot, path, timeout)
}

func kill(root, path string, timeout time.Duration) error {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		dir := filepath.Join(root, path)
		err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return waitEmpty(dir, timeout)
	}
	return killV1(root, path, timeout)
}

func killV1(root, path string, timeout time.Duration) error {
	state := filepath.Join(root, "freezer", path, "freezer.state")
	frozen := os.WriteFile(state, []byte("FROZEN"), 0) == nil
	var dir string
	for _, h := range hierarchiesUnder(root) {
		if d := filepath.Join(h, path); dirExists(d) {
			dir = d
			break
		}
	}
	if dir != "" {
		for _, pid := range members(dir) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	if frozen {
		_ = os.WriteFile(state, []byte("THAWED"), 0) // the kills land now
	}
	if dir == "" {
		return nil
	}
	return waitEmpty(dir, timeout)
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// waitEmpty kills what is still in dir until it is empty or timeout passes.
func waitEmpty(dir string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := members(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still holds %d processes", dir, len(pids))
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// members lists the pids in the cgroup dir and its descendants.
func members(dir string) []int {
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
