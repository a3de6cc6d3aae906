package container

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/berth-cri/berth/sandbox/claim"
)

// Service is the container domain: the records, the containers' root
// filesystems and image mounts, their inits in the pods' shims, their exits,
// their cgroups' cleanup and their recovery. cri/ translates CRI requests
// into its calls and orders them with the other domains (pod → network →
// container); facts about pods come in as plain values (Pod).
type Service struct {
	store    *Store
	runner   Runner
	snaps    Snapshots
	os       OS
	stateDir string

	// bg lives as long as the service: the exit watchers run in it.
	bg       context.Context
	stopBg   context.CancelFunc
	watchMu  sync.Mutex
	watching map[string]bool // pods whose shim has a watcher
	watchers sync.WaitGroup  // for tests: Close does not wait
}

// Options are what a Service is made of.
type Options struct {
	// Store holds the records (loaded before the service is used).
	Store *Store
	// Runner runs the containers in the pods' shims.
	Runner Runner
	// Snapshots hold the root filesystems and image mounts' views.
	Snapshots Snapshots
	// OS mounts, makes dirs and cleans cgroups (HostOS{} in berthd).
	OS OS
	// StateDir is berthd's volatile state dir: containers/<id>/ is under it.
	StateDir string
}

// NewService returns a Service. It starts nothing.
func NewService(o Options) *Service {
	s := &Service{store: o.Store, runner: o.Runner, snaps: o.Snapshots, os: o.OS, stateDir: o.StateDir,
		watching: map[string]bool{}}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	return s
}

// Close stops the exit watchers; the shims and their containers go on. It
// does not wait for a watcher busy settling a dead shim's containers.
func (s *Service) Close() { s.stopBg() }

// Pod is what the service needs to know of a container's pod, as plain
// values (sandbox/ and cri/ own the pod itself).
type Pod struct {
	ID string
	// CgroupParent is the pod's cgroup; a container's is CgroupParent/<id>.
	CgroupParent string
	// UserNS is the pinned user namespace of a pod that has its own ("" for
	// the host's); RootUID and RootGID are its root's host IDs.
	UserNS           string
	RootUID, RootGID uint32
	// LogDirectory is the pod's log dir (the kubelet's), "" if none.
	LogDirectory string
	// SELinuxProcessLabel and SELinuxMountLabel are the pod's labels, for
	// its pause process ("" without SELinux).
	SELinuxProcessLabel, SELinuxMountLabel string
}

// CgroupPath is the cgroup of container id in a pod whose cgroup is parent.
func CgroupPath(parent, id string) string { return parent + "/" + id }

// Get returns a copy of a container's record.
func (s *Service) Get(id string) (*Container, error) { return s.store.Get(id) }

// Find resolves a full ID or a unique prefix.
func (s *Service) Find(idOrPrefix string) (*Container, error) { return s.store.Find(idOrPrefix) }

// List returns copies of the records that keep returns true for, newest first.
func (s *Service) List(keep func(*Container) bool) []*Container { return s.store.List(keep) }

// SetNotify makes fn hear of every recorded change of state, in order.
func (s *Service) SetNotify(fn func(Change)) { s.store.SetNotify(fn) }

// claimed claims a container for op and runs fn on its record as it is
// under the claim. A container removed meanwhile is no error: stop and
// remove are idempotent.
func (s *Service) claimed(ctx context.Context, id string, op claim.Op, fn func(*Container) error) error {
	c, release, err := s.store.Claim(ctx, id, op)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	defer release()
	return fn(c)
}

// The layout of a container's state dir, <state>/containers/<id>/:
//
//	rootfs/            the rootfs mount (snapshot key <id>)
//	image-mounts/<n>   image mount n, read-only (snapshot key <id>.image<n>)
//	image-mounts/.empty  the second lower dir of a one-layer image mount
//	volumes/           the image's VOLUMEs (made by the spec's builder)
//	container.log      the log, when the pod has no log dir

func (s *Service) containersDir() string   { return filepath.Join(s.stateDir, "containers") }
func (s *Service) dir(id string) string    { return filepath.Join(s.containersDir(), id) }
func (s *Service) rootfs(id string) string { return filepath.Join(s.dir(id), "rootfs") }
func (s *Service) imageMountsDir(id string) string {
	return filepath.Join(s.dir(id), "image-mounts")
}

func imageMountKey(id string, n int) string { return id + ".image" + strconv.Itoa(n) }

// snapshotOwner is the container a snapshot key belongs to: the key itself
// for a rootfs, the part before the dot for an image mount.
func snapshotOwner(key string) string {
	owner, _, _ := strings.Cut(key, ".")
	return owner
}

// cleanupTimeout bounds one rollback or cleanup. It is generous: a cleanup
// that gives up early leaks what it was undoing; one that never ends holds
// a container's name for ever.
const cleanupTimeout = 2 * time.Minute

// cleanupContext is the context a rollback runs on: the parent's values (its
// logger and fields) without its cancellation, since the request's context is
// often the reason for the rollback (its deadline passed, the kubelet left),
// and a deadline of its own.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}
