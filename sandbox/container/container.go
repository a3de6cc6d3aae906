package container

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/store"
)

// State is a container's state.
type State string

// The states of a container.
const (
	Created State = "CREATED"
	Running State = "RUNNING"
	Exited  State = "EXITED"
	Unknown State = "UNKNOWN"
)

// transitions lists the states each state may move to.
var transitions = map[State][]State{
	Created: {Running, Exited, Unknown},
	Running: {Exited, Unknown},
	Exited:  {Exited},
	Unknown: {Running, Exited, Unknown},
}

// Container is a container's record.
type Container struct {
	ID          string            `json:"id"`
	PodID       string            `json:"pod_id"`
	Name        string            `json:"name"`
	Attempt     uint32            `json:"attempt"`
	Image       string            `json:"image"`    // as the caller named it
	ImageID     string            `json:"image_id"` // config digest
	ImageRef    string            `json:"image_ref"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	LogPath     string            `json:"log_path,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	// User is the identity the container's processes run as.
	User *User `json:"user,omitempty"`
	// Resources are the container's current cgroup settings.
	Resources *Resources `json:"resources,omitempty"`
	// StopSignal is the signal StopContainer sends first (a number).
	StopSignal int `json:"stop_signal,omitempty"`
	// Config is the CRI config as JSON, kept for verbose status.
	Config []byte `json:"config,omitempty"`
	// Spec is the OCI spec the container was created with, as JSON, for
	// NRI plugins' view of it after a restart of berthd.
	Spec json.RawMessage `json:"spec,omitempty"`

	State      State     `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   int32     `json:"exit_code"`
	Reason     string    `json:"reason,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// Mount is a CRI mount as the container was given it (Propagation is the
// CRI enum's number).
type Mount struct {
	ContainerPath     string `json:"container_path"`
	HostPath          string `json:"host_path"`
	Readonly          bool   `json:"readonly,omitempty"`
	RecursiveReadOnly bool   `json:"recursive_read_only,omitempty"`
	SelinuxRelabel    bool   `json:"selinux_relabel,omitempty"`
	Propagation       int32  `json:"propagation,omitempty"`
	// Image is the image an image mount shows (the CRI's Mount.image), as
	// the kubelet named it; ImageRef is that image's ID, as PullImage
	// answered it; ImageSubPath the path inside it that is mounted.
	Image        string `json:"image,omitempty"`
	ImageRef     string `json:"image_ref,omitempty"`
	ImageSubPath string `json:"image_sub_path,omitempty"`
	// MountOptions are the CRI's extra bind flags (noexec, nodev, nosuid).
	MountOptions []string `json:"mount_options,omitempty"`
}

// User is who a container's processes are: uid, primary gid, and every group
// they belong to (the primary one included).
type User struct {
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
}

// Resources are a container's cgroup settings and oom_score_adj, as CRI's
// LinuxContainerResources gives them.
type Resources struct {
	CPUPeriod       int64             `json:"cpu_period,omitempty"`
	CPUQuota        int64             `json:"cpu_quota,omitempty"`
	CPUShares       int64             `json:"cpu_shares,omitempty"`
	MemoryLimit     int64             `json:"memory_limit,omitempty"`
	MemorySwapLimit int64             `json:"memory_swap_limit,omitempty"`
	OOMScoreAdj     int64             `json:"oom_score_adj,omitempty"`
	CpusetCPUs      string            `json:"cpuset_cpus,omitempty"`
	CpusetMems      string            `json:"cpuset_mems,omitempty"`
	Hugepages       map[string]uint64 `json:"hugepages,omitempty"`
	Unified         map[string]string `json:"unified,omitempty"`
}

const recordVersion = 1

// Store holds every container record, on disk and in memory.
type Store struct {
	disk *store.Store
	mu   sync.RWMutex // guards ctrs (the map, not the containers)
	ctrs map[string]*entry
	// unreadable are the ids whose records did not decode at Load: what
	// they describe is kept (see Unreadable), and the ids stay taken.
	unreadable map[string]bool
	// notify, when set, hears of every change of state (see SetNotify).
	notify func(Change)
	// order keeps each container's changes and their notifications in one
	// order (see changeLocks).
	order changeLocks
}

// Change is a container's change of state, once recorded: added (CREATED),
// moved to a new state, or Deleted.
type Change struct {
	Container Container
	Deleted   bool
}

// SetNotify makes fn hear of every change of state, after it is recorded
// and outside the record's lock, in the order of the changes (fn must not
// change containers itself). Set it before the store is used.
func (s *Store) SetNotify(fn func(Change)) { s.notify = fn }

func (s *Store) tell(ch Change) {
	if s.notify != nil {
		s.notify(ch)
	}
}

type entry struct {
	mu sync.Mutex
	c  Container
	// gate is the container's claim: which operation works on it.
	gate claim.Gate
}

// NewStore opens the records in dir.
func NewStore(dir string) (*Store, error) {
	d, err := store.New(dir, recordVersion)
	if err != nil {
		return nil, err
	}
	return &Store{disk: d, ctrs: map[string]*entry{}, unreadable: map[string]bool{}}, nil
}

// Load reads every record (at start-up, before serving). An unreadable record
// (corrupt, or of a newer Berth's schema) is logged and left as it is for
// inspection: its container is not listed, and Unreadable names it so that
// recovery keeps what it owns (process, rootfs mount, snapshot).
func (s *Store) Load(ctx context.Context) error {
	return s.disk.LoadAll(func(id string, decode func(any) error) error {
		var c Container
		if err := decode(&c); err != nil {
			log.G(ctx).WithError(err).WithFields(log.Fields{"container": id, "file": s.disk.File(id)}).
				Error("unreadable container record; keeping the container, its rootfs and snapshot, and the file for inspection")
			s.mu.Lock()
			s.unreadable[id] = true
			s.mu.Unlock()
			return nil
		}
		s.mu.Lock()
		s.ctrs[id] = &entry{c: c}
		s.mu.Unlock()
		return nil
	})
}

// Unreadable lists the ids whose records Load could not read. Nothing they
// own may be taken for an orphan: recovery must leave it all in place.
func (s *Store) Unreadable() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Collect(maps.Keys(s.unreadable))
}

// Hold takes a loaded container out of the store's lists and lookups, as if
// its record were unreadable: Unreadable names it from then on, so recovery
// keeps what it owns. The containers of a pod whose record is unreadable are
// held: a container listed with a pod nobody lists is one the kubelet removes.
func (s *Store) Hold(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ctrs[id]; ok {
		delete(s.ctrs, id)
		s.unreadable[id] = true
	}
}

// Add records a new container in CREATED state.
func (s *Store) Add(c Container) error {
	mu := s.order.of(c.ID)
	mu.Lock()
	defer mu.Unlock()
	c.State = Created
	if c.CreatedAt.IsZero() {
		c.CreatedAt = time.Now().UTC()
	}
	if err := s.add(c); err != nil {
		return err
	}
	s.tell(Change{Container: c})
	return nil
}

func (s *Store) add(c Container) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ctrs[c.ID]; ok || s.unreadable[c.ID] {
		return fmt.Errorf("container %s: %w", c.ID, errdefs.ErrAlreadyExists)
	}
	if err := s.disk.Put(c.ID, &c); err != nil {
		return err
	}
	s.ctrs[c.ID] = &entry{c: c}
	return nil
}

func (s *Store) entry(id string) (*entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.ctrs[id]
	if !ok {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return e, nil
}

// Get returns a copy of a container's record.
func (s *Store) Get(id string) (*Container, error) {
	e, err := s.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.c
	return &c, nil
}

// Find resolves a full ID or a unique prefix.
func (s *Store) Find(idOrPrefix string) (*Container, error) {
	if c, err := s.Get(idOrPrefix); err == nil {
		return c, nil
	}
	s.mu.RLock()
	var match []string
	for id := range s.ctrs {
		if idOrPrefix != "" && strings.HasPrefix(id, idOrPrefix) {
			match = append(match, id)
		}
	}
	s.mu.RUnlock()
	if len(match) != 1 {
		return nil, fmt.Errorf("container %q (%d matches): %w", idOrPrefix, len(match), errdefs.ErrNotFound)
	}
	return s.Get(match[0])
}

// Claim waits until op may work on the container and claims it: a stop
// beside other stops, a start or a remove alone. It returns the record as it
// is under the claim, and the release. A container removed meanwhile is
// NotFound; the context's end while waiting is its error.
func (s *Store) Claim(ctx context.Context, id string, op claim.Op) (*Container, func(), error) {
	e, err := s.entry(id)
	if err != nil {
		return nil, nil, err
	}
	release, err := e.gate.Take(ctx, op, op == claim.Stopping)
	if err != nil {
		return nil, nil, fmt.Errorf("container %s: %w", id, err)
	}
	e.mu.Lock()
	c := e.c
	e.mu.Unlock()
	return &c, release, nil
}

// List returns copies of the records that keep returns true for, newest first.
func (s *Store) List(keep func(*Container) bool) []*Container {
	s.mu.RLock()
	entries := make([]*entry, 0, len(s.ctrs))
	for _, e := range s.ctrs {
		entries = append(entries, e)
	}
	s.mu.RUnlock()
	var out []*Container
	for _, e := range entries {
		e.mu.Lock()
		c := e.c
		e.mu.Unlock()
		if keep == nil || keep(&c) {
			out = append(out, &c)
		}
	}
	slices.SortFunc(out, func(a, b *Container) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

// Update changes a container through fn under its lock: the new state must
// be a legal transition; the record is written before memory changes. An fn
// error leaves everything as it was.
func (s *Store) Update(id string, fn func(c *Container) error) (*Container, error) {
	mu := s.order.of(id)
	mu.Lock()
	defer mu.Unlock()
	e, err := s.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	prev := e.c.State
	next := e.c
	if err := fn(&next); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	if next.State != prev && !slices.Contains(transitions[prev], next.State) {
		e.mu.Unlock()
		return nil, fmt.Errorf("container %s: %s → %s is not allowed: %w", id, prev, next.State, errdefs.ErrFailedPrecondition)
	}
	if err := s.disk.Put(id, &next); err != nil {
		e.mu.Unlock()
		return nil, err
	}
	e.c = next
	e.mu.Unlock()
	if next.State != prev {
		s.tell(Change{Container: next})
	}
	c := next
	return &c, nil
}

// Delete removes a container's record; a missing one is not an error.
func (s *Store) Delete(id string) error {
	mu := s.order.of(id)
	mu.Lock()
	defer mu.Unlock()
	s.mu.Lock()
	if err := s.disk.Remove(id); err != nil {
		s.mu.Unlock()
		return err
	}
	e, ok := s.ctrs[id]
	delete(s.ctrs, id)
	s.mu.Unlock()
	if ok {
		e.gate.Gone()
		e.mu.Lock()
		c := e.c
		e.mu.Unlock()
		s.tell(Change{Container: c, Deleted: true})
	}
	return nil
}

// changeLocks order each container's recorded changes with their
// notifications. The store tells of a change after it has released the
// record's lock, so two changes of one container made at once
// (StartContainer's RUNNING and the exit watcher's EXITED for a command that
// ends at once) could be told in the reverse order, and an event subscriber
// would see a stopped container start. Every change holds one of these
// locks, chosen by the container's ID, from the change to its notification;
// the section is a record write, as the record's own lock is.
type changeLocks [32]sync.Mutex

func (l *changeLocks) of(id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(id))
	return &l[h.Sum32()%uint32(len(l))]
}
