package container

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
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
