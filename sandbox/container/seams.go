package container

import (
	"context"
	"os"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/runner"
)

// Runner is what the service needs of the pods' shims (one berth-shim per
// pod; runner.Pool in berthd, a fake in tests).
type Runner interface {
	// Get returns the pod's shim, starting it if it does not run.
	Get(ctx context.Context, pod string) (Shim, error)
	// Lookup returns the pod's shim if it runs, else NotFound; it starts
	// none.
	Lookup(ctx context.Context, pod string) (Shim, error)
	// Stop shuts the pod's shim down (it refuses while it holds
	// containers); a pod without one is fine.
	Stop(ctx context.Context, pod string) error
	// RecordedExit is a container's exit as its shim recorded it; it
	// outlives the shim.
	RecordedExit(pod, id string) (runner.Exit, error)
	// Pods lists the pods that have shim files.
	Pods() []string
}

// Shim is one pod's berth-shim (runner.Client). Its Delete waits for the
// creates of that ID in flight and refuses later ones, so that a rollback's
// Delete is final; its List answers once the creates in flight are done.
type Shim interface {
	Create(ctx context.Context, id string, spec *specs.Spec, stdio runner.IO) error
	Start(ctx context.Context, id string) error
	Update(ctx context.Context, id string, r *specs.LinuxResources) error
	Signal(ctx context.Context, id string, sig syscall.Signal) error
	Wait(ctx context.Context, id string, timeout time.Duration) (runner.WaitReply, error)
	Delete(ctx context.Context, id string) error
	List(ctx context.Context) ([]string, error)
	// Exits long-polls for the exits numbered after seq; a new shim
	// numbers them anew.
	Exits(ctx context.Context, after uint64, timeout time.Duration) ([]runner.ExitEvent, error)
	// Pause starts (once) the pod's pause process, PID 1 of the pod's
	// shared PID namespace, and returns its pid.
	Pause(ctx context.Context, args runner.PauseArgs) (int, error)
	// Dead says whether the connection to the shim broke.
	Dead() bool
}

// PoolRunner is berthd's Runner: runner.Pool's shims.
type PoolRunner struct{ *runner.Pool }

// Get returns the pod's shim, starting it if needed (runner.Pool.Get).
func (p PoolRunner) Get(ctx context.Context, pod string) (Shim, error) {
	c, err := p.Pool.Get(ctx, pod)
	if err != nil {
		return nil, err // not a nil *Client in a non-nil Shim
	}
	return c, nil
}

// Lookup returns the pod's running shim (runner.Pool.Lookup).
func (p PoolRunner) Lookup(ctx context.Context, pod string) (Shim, error) {
	c, err := p.Pool.Lookup(ctx, pod)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Snapshots holds the containers' writable layers and the read-only views of
// the images that image mounts show (the image service's snapshots). Keys
// are "<container id>" for a rootfs, "<container id>.image<n>" for image
// mount n (see snapshotOwner).
type Snapshots interface {
	// Prepare makes the snapshot key of image, writable unless readOnly,
	// and pins the image's layers until Remove.
	Prepare(ctx context.Context, key, image string, readOnly bool) (*Snapshot, error)
	Remove(ctx context.Context, key string) error
	Keys() ([]string, error)
}

// Snapshot is a prepared snapshot's dirs, as overlayfs mounts them.
type Snapshot struct {
	// Lower are the layer dirs, top first; Upper and Work are empty for a
	// read-only view.
	Lower       []string
	Upper, Work string
	// Options are the overlay mount options of these dirs. When Chdir is
	// set they are relative to it (long layer chains), and the mount is made
	// from there.
	Options, Chdir string
}

// OS is what the service does to the host: mounts, dirs and cgroups. Tests
// fake it to inject failures and to see what is left.
type OS interface {
	// MakeDir makes a dir and its parents (0755); an existing one is fine.
	MakeDir(path string) error
	// RemoveAll removes a dir and what is in it; it must hold no mount.
	RemoveAll(path string) error
	// DirNames lists the dirs in dir (none if it is missing).
	DirNames(dir string) []string
	// MountOverlay mounts an overlay at target (made if missing) with
	// options, relative to chdir when it is set.
	MountOverlay(options, chdir, target string) error
	// MountOverlayMapped mounts an overlay of l at target, each layer
	// idmapped into the user namespace pinned at userns (see
	// MountRootfsMapped).
	MountOverlayMapped(l Layers, target, userns string, uid, gid uint32) error
	// Unmount detaches the mount at target; none there is fine.
	Unmount(target string) error
	// KillCgroup kills every process in a cgroup and waits (at most
	// timeout) until it is empty.
	KillCgroup(path string, timeout time.Duration) error
	// RemoveCgroup removes an empty cgroup, then its empty parents up to
	// top (not included).
	RemoveCgroup(path, top string) error
}

// HostOS is the real OS.
type HostOS struct{}

// MakeDir makes path and its parents.
func (HostOS) MakeDir(path string) error { return os.MkdirAll(path, 0o755) }

// RemoveAll removes path and what is in it.
func (HostOS) RemoveAll(path string) error { return os.RemoveAll(path) }

// DirNames lists the dirs in dir.
func (HostOS) DirNames(dir string) []string { return DirNames(dir) }

// MountOverlay mounts an overlay (see MountRootfs).
func (HostOS) MountOverlay(options, chdir, target string) error {
	return MountRootfs(options, chdir, target)
}

// MountOverlayMapped mounts an idmapped overlay (see MountRootfsMapped).
func (HostOS) MountOverlayMapped(l Layers, target, userns string, uid, gid uint32) error {
	return MountRootfsMapped(l, target, userns, uid, gid)
}

// Unmount detaches a mount (see UnmountRootfs).
func (HostOS) Unmount(target string) error { return UnmountRootfs(target) }

// KillCgroup kills a cgroup's processes (cgroups.Kill).
func (HostOS) KillCgroup(path string, timeout time.Duration) error {
	return cgroups.Kill(path, timeout)
}

// RemoveCgroup removes an empty cgroup (cgroups.RemoveEmpty).
func (HostOS) RemoveCgroup(path, top string) error { return cgroups.RemoveEmpty(path, top) }
