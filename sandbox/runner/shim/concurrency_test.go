package shim

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/test/wait"
)

// A create in flight holds up nothing else in its pod: while one container's
// create hook waits for the test, a sibling is updated, killed through its
// helper, waited for and deleted; what the sibling left behind is reaped
// once the create is over, and the create then ends well.
func TestSlowCreateHoldsUpNoSibling(t *testing.T) {
	rootfs, dir, cs := newTestContainers(t)
	runReaper(t, cs)

	// Without a PID namespace of its own, the sibling is killed by a helper,
	// and its background sleep is orphaned to the subreaper.
	sib := testSpec(rootfs, "sib", "/bin/sh", "-c", "sleep 1000 & sleep 1000")
	sib.Linux.Namespaces = sib.Linux.Namespaces[1:]
	startWith(t, cs, dir, "sib", sib, runner.IO{})

	gate := filepath.Join(dir, "gate")
	slow := testSpec(rootfs, "slow", "/bin/sleep", "1000")
	slow.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Env: []string{"PATH=/usr/bin:/bin"},
		Args: []string{"sh", "-c", `touch "$0.started"; while [ ! -e "$0.open" ]; do sleep 0.05; done`, gate}}}}
	created := make(chan error, 1)
	go func() { created <- cs.Create("slow", slow, runner.IO{LogPath: filepath.Join(dir, "slow.log")}) }()
	t.Cleanup(func() { cs.Delete("slow") })
	t.Cleanup(func() { os.WriteFile(gate+".open", nil, 0o600) }) // before the Delete
	wait.ForFile(t, gate+".started")

	shares := uint64(512)
	wait.Within(t, "update of the sibling", func() error {
		return cs.Update("sib", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: &shares}})
	})
	wait.Within(t, "SIGKILL of the sibling", func() error { return cs.Signal("sib", syscall.SIGKILL) })
	if exit, done, err := cs.Wait("sib", wait.Bound); err != nil || !done || exit.Code != 137 {
		t.Fatalf("the sibling's exit = %+v, done %v, %v", exit, done, err)
	}
	wait.Within(t, "delete of the sibling", func() error { return cs.Delete("sib") })
	if _, err := os.Stat(gate + ".open"); err == nil {
		t.Fatal("the create's hook was let go early")
	}

	if err := os.WriteFile(gate+".open", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := wait.Receive(t, "the slow create", created); err != nil {
		t.Fatalf("the slow create: %v", err)
	}
	if ids := cs.IDs(); !slices.Equal(ids, []string{"slow"}) {
		t.Fatalf("containers %v, want [slow]", ids)
	}
	awaitNoZombies(t)
}

// While a process is starting, a zombie the shim knows nothing of may be it
// (a create helper's init before its adoption): the reaper leaves it, and
// reaps it once nothing is starting.
func TestReaperWaitsForStartsInFlight(t *testing.T) {
	cs, err := NewContainers(filepath.Join(t.TempDir(), "state"), "/nonexistent")
	if err != nil {
		t.Fatal(err)
	}
	cs.beginStart()
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	wait.Until(t, "the exit of true", func() bool { return slices.Contains(zombieChildren(os.Getpid()), pid) })
	cs.reapOnce()
	if !slices.Contains(zombieChildren(os.Getpid()), pid) {
		t.Fatal("the reaper took a zombie while a process was starting")
	}
	cs.endStart()
	select {
	case <-cs.reapAgain:
	default:
		t.Fatal("the deferred reap was not asked for again")
	}
	cs.reapOnce()
	if slices.Contains(zombieChildren(os.Getpid()), pid) {
		t.Fatal("the zombie was not reaped once nothing was starting")
	}
}

// awaitNoZombies waits until the test process has no zombie children.
func awaitNoZombies(t *testing.T) {
	t.Helper()
	wait.Until(t, "the reaping of every zombie", func() bool { return len(zombieChildren(os.Getpid())) == 0 })
}

// runReaper runs cs's orphan reaper until the test ends, and waits for it to
// return then: a reaper left running would reap the next test's zombies
// (the test process is one subreaper for them all).
func runReaper(t *testing.T, cs *Containers) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); cs.ReapOrphans(stop) }()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}
