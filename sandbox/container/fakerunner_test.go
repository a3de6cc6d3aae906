package container

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// fakeRunner is a set of pod shims in memory. A shim that is killed leaves
// its files (Pods lists it) and the exits it recorded.
type fakeRunner struct {
	mu sync.Mutex
	faults
	shims    map[string]*fakeShim // running
	files    map[string]bool      // pods with shim files
	recorded map[string]runner.Exit
	stopped  []string
	// createLost makes Create fail after the shim made the container (the
	// answer was lost on the way back).
	createLost bool
	// ignoreTerm: containers outlive SIGTERM.
	ignoreTerm bool
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{shims: map[string]*fakeShim{}, files: map[string]bool{}, recorded: map[string]runner.Exit{}}
}

type fakeCtr struct {
	spec    *specs.Spec
	io      runner.IO
	started bool
	exited  bool
	exit    runner.Exit
	signals []syscall.Signal
}

type fakeShim struct {
	r      *fakeRunner
	pod    string
	ctrs   map[string]*fakeCtr
	events []runner.ExitEvent
	wake   chan struct{} // closed and renewed when an exit or death happens
	dead   bool
	pauses int
}

func (f *fakeRunner) Get(_ context.Context, pod string) (Shim, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("get", pod); err != nil {
		return nil, err
	}
	if sh, ok := f.shims[pod]; ok {
		return sh, nil
	}
	return f.start(pod), nil
}

func (f *fakeRunner) start(pod string) *fakeShim {
	sh := &fakeShim{r: f, pod: pod, ctrs: map[string]*fakeCtr{}, wake: make(chan struct{})}
	f.shims[pod], f.files[pod] = sh, true
	return sh
}

func (f *fakeRunner) Lookup(ctx context.Context, pod string) (Shim, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("lookup", pod); err != nil {
		return nil, err
	}
	sh, ok := f.shims[pod]
	if !ok {
		return nil, fmt.Errorf("shim of pod %s: %w", pod, errdefs.ErrNotFound)
	}
	return sh, nil
}

func (f *fakeRunner) Stop(_ context.Context, pod string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("stop", pod); err != nil {
		return err
	}
	if sh, ok := f.shims[pod]; ok {
		if len(sh.ctrs) > 0 {
			return fmt.Errorf("shim of pod %s holds containers: %w", pod, errdefs.ErrFailedPrecondition)
		}
		sh.die()
		delete(f.shims, pod)
	}
	delete(f.files, pod)
	f.stopped = append(f.stopped, pod)
	return nil
}

func (f *fakeRunner) RecordedExit(pod, id string) (runner.Exit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.recorded[pod+"/"+id]
	if !ok {
		return e, os.ErrNotExist
	}
	return e, nil
}

func (f *fakeRunner) Pods() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.files))
}

// kill makes the pod's shim die: its containers' processes are orphaned,
// its files stay.
func (f *fakeRunner) kill(pod string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sh, ok := f.shims[pod]; ok {
		sh.die()
		delete(f.shims, pod)
	}
}

// holds says whether the pod's running shim holds container id.
func (f *fakeRunner) holds(pod, id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	sh, ok := f.shims[pod]
	return ok && sh.ctrs[id] != nil
}

// exit makes container id of the pod exit with code, reported to Exits.
func (f *fakeRunner) exit(pod, id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sh := f.shims[pod]
	sh.exitLocked(id, runner.Exit{Code: code, Reason: exitReason(code), At: time.Now().UTC()})
}

func (sh *fakeShim) die() {
	sh.dead = true
	sh.wakeLocked()
}

func (sh *fakeShim) wakeLocked() {
	close(sh.wake)
	sh.wake = make(chan struct{})
}

func (sh *fakeShim) exitLocked(id string, e runner.Exit) {
	c := sh.ctrs[id]
	if c == nil || c.exited {
		return
	}
	c.exited, c.exit = true, e
	sh.r.recorded[sh.pod+"/"+id] = e
	sh.events = append(sh.events, runner.ExitEvent{ID: id, Seq: uint64(len(sh.events) + 1), Exit: e})
	sh.wakeLocked()
}

func (sh *fakeShim) op(op, id string) (*fakeCtr, error) {
	if sh.dead {
		return nil, fmt.Errorf("shim of pod %s: connection lost: %w", sh.pod, errdefs.ErrUnavailable)
	}
	if err := sh.r.check(op, id); err != nil {
		return nil, err
	}
	c := sh.ctrs[id]
	if c == nil && op != "create" && op != "delete" {
		return nil, fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

func (sh *fakeShim) Create(ctx context.Context, id string, spec *specs.Spec, stdio runner.IO) error {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	if _, err := sh.op("create", id); err != nil {
		return err
	}
	sh.ctrs[id] = &fakeCtr{spec: spec, io: stdio}
	if sh.r.createLost {
		return fmt.Errorf("create %s: %w", id, errInjected)
	}
	return ctx.Err() // made, but the caller left meanwhile
}

func (sh *fakeShim) Start(_ context.Context, id string) error {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	c, err := sh.op("start", id)
	if err != nil {
		return err
	}
	c.started = true
	return nil
}

func (sh *fakeShim) Update(_ context.Context, id string, r *specs.LinuxResources) error {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	c, err := sh.op("update", id)
	if err != nil {
		return err
	}
	if c.spec.Linux == nil {
		c.spec.Linux = &specs.Linux{}
	}
	c.spec.Linux.Resources = r
	return nil
}

func (sh *fakeShim) Signal(_ context.Context, id string, sig syscall.Signal) error {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	c, err := sh.op("signal", id)
	if err != nil {
		return err
	}
	c.signals = append(c.signals, sig)
	if sig == syscall.SIGKILL || !sh.r.ignoreTerm {
		sh.exitLocked(id, runner.Exit{Code: 128 + int(sig), Reason: "Error", At: time.Now().UTC()})
	}
	return nil
}

func (sh *fakeShim) Wait(_ context.Context, id string, _ time.Duration) (runner.WaitReply, error) {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	c, err := sh.op("wait", id)
	if err != nil {
		return runner.WaitReply{}, err
	}
	return runner.WaitReply{Exited: c.exited, Exit: c.exit}, nil
}

func (sh *fakeShim) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	if _, err := sh.op("delete", id); err != nil {
		return err
	}
	delete(sh.ctrs, id)
	return nil
}

func (sh *fakeShim) List(context.Context) ([]string, error) {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	if _, err := sh.op("list", ""); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return slices.Sorted(maps.Keys(sh.ctrs)), nil
}

func (sh *fakeShim) Exits(ctx context.Context, after uint64, _ time.Duration) ([]runner.ExitEvent, error) {
	for {
		sh.r.mu.Lock()
		if sh.dead {
			sh.r.mu.Unlock()
			return nil, fmt.Errorf("shim of pod %s: connection lost", sh.pod)
		}
		var out []runner.ExitEvent
		for _, e := range sh.events {
			if e.Seq > after {
				out = append(out, e)
			}
		}
		wake := sh.wake
		sh.r.mu.Unlock()
		if len(out) > 0 {
			return out, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (sh *fakeShim) Pause(context.Context, runner.PauseArgs) (int, error) {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	if err := sh.r.check("pause", sh.pod); err != nil {
		return 0, err
	}
	sh.pauses++
	return 42, nil
}

func (sh *fakeShim) Dead() bool {
	sh.r.mu.Lock()
	defer sh.r.mu.Unlock()
	return sh.dead
}
