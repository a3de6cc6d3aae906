package shim

import (
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/sandbox/runner"
)

// A removal used to run the delete helper (libcontainer's Destroy), whose
// start cost more than the rest of RemoveContainer. For an exited container
// what Destroy does is small: its cgroup is empty (the exit killed what the
// init left, see leftovers.go), so its cgroup dirs are removed and its state
// dir (Delete removes it). The shim does that itself; a container with
// poststop hooks (libcontainer runs them), with no known cgroup, or whose
// cgroup will not go, is left to the helper.

// Removing a cgroup dir can meet EBUSY for a moment after its last process
// died; libcontainer retries as well.
const (
	rmdirTries = 5
	rmdirPause = 10 * time.Millisecond
)

// destroy removes an exited container's cgroups, by itself where it can,
// else through the delete helper.
func (cs *Containers) destroy(id string, c *container) error {
	if !c.poststop && removeCgroups(c.cgroupPaths) == nil {
		return nil
	}
	if _, err := cs.helper(runner.HelperDelete, runner.HelperRequest{ID: id}); err != nil {
		return fmt.Errorf("destroy container %s: %w", id, err)
	}
	return nil
}

// hasPoststop says whether a spec has poststop hooks, which only the
// helper's Destroy runs.
func hasPoststop(spec *specs.Spec) bool {
	return spec.Hooks != nil && len(spec.Hooks.Poststop) > 0
}

// removeCgroups removes every dir of a container's cgroup (one per v1
// controller, or the v2 one); a dir already gone is fine.
func removeCgroups(paths map[string]string) error {
	if len(paths) == 0 {
		return errors.New("no cgroup paths known")
	}
	done := map[string]bool{}
	for _, p := range paths {
		if done[p] {
			continue
		}
		done[p] = true
		if err := rmdirRetrying(p); err != nil {
			return err
		}
	}
	return nil
}

func rmdirRetrying(dir string) error {
	pause := rmdirPause
	for try := 1; ; try++ {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || try == rmdirTries {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(pause)
		pause *= 2
	}
}
