package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// errInjected is what an injected failure returns.
var errInjected = errors.New("injected failure")

// faults is a list of failures to inject: an operation, a substring of its
// subject (a path, a key, an ID; "" matches all), and how often it fails
// (0: always).
type faults struct {
	fmu  sync.Mutex
	list []*fault
}

type fault struct {
	op, match string
	times     int
}

func (f *faults) inject(op, match string) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	f.list = append(f.list, &fault{op: op, match: match})
}

func (f *faults) injectOnce(op, match string) {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	f.list = append(f.list, &fault{op: op, match: match, times: 1})
}

func (f *faults) check(op, subject string) error {
	f.fmu.Lock()
	defer f.fmu.Unlock()
	for i, ft := range f.list {
		if ft.op == op && strings.Contains(subject, ft.match) {
			if ft.times == 1 {
				f.list = slices.Delete(f.list, i, i+1)
			}
			return fmt.Errorf("%s %s: %w", op, subject, errInjected)
		}
	}
	return nil
}

// fakeOS keeps dirs, mounts and cgroups in memory. Removing a dir that holds
// a mount is a test failure: the real one would delete what the mount shows.
type fakeOS struct {
	t  testing.TB
	mu sync.Mutex
	faults
	dirs    map[string]bool
	mounts  map[string]string // target → options ("mapped uid:gid" for idmapped ones)
	killed  []string
	removed []string // cgroups
}

func newFakeOS(t testing.TB) *fakeOS {
	return &fakeOS{t: t, dirs: map[string]bool{}, mounts: map[string]string{}}
}

func (f *fakeOS) MakeDir(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("mkdir", path); err != nil {
		return err
	}
	f.mkdir(path)
	return nil
}

func (f *fakeOS) mkdir(path string) {
	for p := filepath.Clean(path); p != "/" && p != "."; p = filepath.Dir(p) {
		f.dirs[p] = true
	}
}

func (f *fakeOS) RemoveAll(path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("removeall", path); err != nil {
		return err
	}
	for m := range f.mounts {
		if under(m, path) {
			f.t.Errorf("RemoveAll(%s) with %s mounted", path, m)
		}
	}
	for d := range f.dirs {
		if under(d, path) {
			delete(f.dirs, d)
		}
	}
	return nil
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func (f *fakeOS) DirNames(dir string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for d := range f.dirs {
		if filepath.Dir(d) == dir {
			names = append(names, filepath.Base(d))
		}
	}
	slices.Sort(names)
	return names
}

func (f *fakeOS) MountOverlay(options, chdir, target string) error {
	return f.mount(target, options)
}

func (f *fakeOS) MountOverlayMapped(l Layers, target, userns string, uid, gid uint32) error {
	return f.mount(target, fmt.Sprintf("mapped %s %d:%d lower=%s", userns, uid, gid, strings.Join(l.Lower, ":")))
}

func (f *fakeOS) mount(target, what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("mount", target); err != nil {
		return err
	}
	f.mkdir(target)
	f.mounts[target] = what
	return nil
}

func (f *fakeOS) Unmount(target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("unmount", target); err != nil {
		return err
	}
	delete(f.mounts, target)
	return nil
}

func (f *fakeOS) KillCgroup(path string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.killed = append(f.killed, path)
	return f.check("killcgroup", path)
}

func (f *fakeOS) RemoveCgroup(path, top string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("removecgroup", path); err != nil {
		return err
	}
	f.removed = append(f.removed, path+" up to "+top)
	return nil
}

// under lists the dirs and mounts at or below path.
func (f *fakeOS) left(path string) (dirs, mounts []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := range f.dirs {
		if under(d, path) {
			dirs = append(dirs, d)
		}
	}
	for m := range f.mounts {
		if under(m, path) {
			mounts = append(mounts, m)
		}
	}
	slices.Sort(dirs)
	slices.Sort(mounts)
	return dirs, mounts
}

// fakeSnapshots keeps snapshot keys in memory. An image's layer count is
// layers[image] (2 unless set).
type fakeSnapshots struct {
	mu sync.Mutex
	faults
	keys   map[string]string // key → image
	layers map[string]int
}

func newFakeSnapshots() *fakeSnapshots {
	return &fakeSnapshots{keys: map[string]string{}, layers: map[string]int{}}
}

func (f *fakeSnapshots) Prepare(_ context.Context, key, image string, readOnly bool) (*Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("prepare", key); err != nil {
		return nil, err
	}
	if _, ok := f.keys[key]; ok {
		return nil, fmt.Errorf("snapshot %s: %w", key, errdefs.ErrAlreadyExists)
	}
	f.keys[key] = image
	n := f.layers[image]
	if n == 0 {
		n = 2
	}
	snap := &Snapshot{}
	for i := n - 1; i >= 0; i-- {
		snap.Lower = append(snap.Lower, fmt.Sprintf("/layers/%s/%d", image, i))
	}
	if !readOnly {
		snap.Upper, snap.Work = "/snapshots/"+key+"/upper", "/snapshots/"+key+"/work"
	}
	snap.Options = "lowerdir=" + strings.Join(snap.Lower, ":") + ",upperdir=" + snap.Upper + ",index=off"
	return snap, nil
}

func (f *fakeSnapshots) Remove(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("remove", key); err != nil {
		return err
	}
	delete(f.keys, key)
	return nil
}

func (f *fakeSnapshots) Keys() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("keys", ""); err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(f.keys)), nil
}

func (f *fakeSnapshots) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.keys[key]
	return ok
}

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
