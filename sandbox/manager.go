package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"

	"github.com/berth-cri/berth/sandbox/claim"
	"github.com/berth-cri/berth/sandbox/store"
)

const recordVersion = 1

// Manager owns the pods: their records, pinned namespaces and files.
type Manager struct {
	os       OS
	store    *store.Store
	stateDir string
	hostDNS  string

	mu   sync.RWMutex // guards pods and unreadable (the maps, not the pods)
	pods map[string]*entry
	// unreadable are the ids whose records did not decode at Recover: the
	// pod's pins, shm, files, network and shim are kept (see Unreadable),
	// and the ids stay taken.
	unreadable map[string]bool
}

// entry is one pod with its lock (one mutex per record).
type entry struct {
	mu  sync.Mutex
	pod Pod
	// gate is the pod's claim: a stop or remove alone, or the creates and
	// starts of its containers that use it.
	gate claim.Gate
}

// NewManager opens the pod records under root and the pod files under state.
func NewManager(osys OS, root, state string) (*Manager, error) {
	st, err := store.New(filepath.Join(root, "pods"), recordVersion)
	if err != nil {
		return nil, err
	}
	return &Manager{os: osys, store: st, stateDir: filepath.Join(state, "pods"), hostDNS: "/etc/resolv.conf", pods: map[string]*entry{}, unreadable: map[string]bool{}}, nil
}

// Create makes the pod's namespaces and files and records it as creating
// (NOTREADY, not listed) until MarkReady. On error nothing is left: no pin,
// no mount, no dir, no record.
func (m *Manager) Create(ctx context.Context, id string, spec Spec) (_ *Pod, retErr error) {
	if err := ValidateSysctls(spec.Sysctls, spec); err != nil {
		return nil, err
	}
	if m.isUnreadable(id) { // its dir is another pod's: a rollback must not release it
		return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrAlreadyExists)
	}
	p := &Pod{ID: id, Spec: spec, State: NotReady, Creating: true, CreatedAt: time.Now().UTC(), Dir: filepath.Join(m.stateDir, id)}
	if err := os.MkdirAll(p.Dir, 0o711); err != nil {
		return nil, fmt.Errorf("pod %s: %w", id, err)
	}
	defer func() {
		if retErr != nil {
			if err := m.release(p); err != nil {
				log.G(ctx).WithError(err).WithField("pod", id).Error("rollback of a failed pod left something behind")
			}
		}
	}()
	if kinds := ownNamespaces(spec); len(kinds) > 0 {
		req := NamespaceRequest{Kinds: kinds, Hostname: spec.Hostname, Sysctls: spec.Sysctls, UserNS: spec.UserNS}
		pins, err := m.os.PinNamespaces(filepath.Join(p.Dir, "ns"), req)
		p.Pins = pins
		if err != nil {
			return nil, fmt.Errorf("pod %s: %w", id, err)
		}
	}
	if spec.IPCMode != ModeNode {
		p.ShmPath = filepath.Join(p.Dir, "shm")
		size := spec.ShmSize
		if size <= 0 {
			size = DefaultShmSize
		}
		if err := m.os.MountShm(p.ShmPath, size, spec.SELinuxMountLabel); err != nil {
			return nil, fmt.Errorf("pod %s: %w", id, err)
		}
	}
	if err := writePodFiles(p, m.hostDNS); err != nil {
		return nil, fmt.Errorf("pod %s: %w", id, err)
	}
	if err := m.store.Put(id, p); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.pods[id] = &entry{pod: *p}
	m.mu.Unlock()
	return p, nil
}

// ownNamespaces lists the namespaces the pod gets of its own (not the node's).
// The PID namespace of a POD-mode pod is made with its first process (the
// shim's pause); NODE mode uses the host's.
func ownNamespaces(spec Spec) []string {
	var kinds []string
	if spec.NetworkMode != ModeNode {
		kinds = append(kinds, NetNS)
	}
	if spec.IPCMode != ModeNode {
		kinds = append(kinds, IPCNS)
	}
	if spec.NetworkMode != ModeNode {
		kinds = append(kinds, UTSNS)
	}
	return kinds
}

// release undoes what Create made; every step tolerates what is already gone.
func (m *Manager) release(p *Pod) error {
	var errs []error
	if p.ShmPath != "" {
		errs = append(errs, m.os.Unmount(p.ShmPath))
	}
	errs = append(errs, m.os.UnpinNamespaces(p.Pins))
	if err := errors.Join(errs...); err != nil {
		return err // keep the dir: its mounts are still there
	}
	return os.RemoveAll(p.Dir)
}

func (m *Manager) entry(id string) (*entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.pods[id]
	if !ok {
		return nil, fmt.Errorf("pod sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	return e, nil
}

// Get returns a copy of a pod's record.
func (m *Manager) Get(id string) (*Pod, error) {
	e, err := m.entry(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pod
	return &p, nil
}

// Find resolves a full ID or a unique prefix.
func (m *Manager) Find(idOrPrefix string) (*Pod, error) {
	if p, err := m.Get(idOrPrefix); err == nil {
		return p, nil
	}
	m.mu.RLock()
	var match []string
	for id := range m.pods {
		if idOrPrefix != "" && strings.HasPrefix(id, idOrPrefix) {
			match = append(match, id)
		}
	}
	m.mu.RUnlock()
	if len(match) != 1 {
		return nil, fmt.Errorf("pod sandbox %q (%d matches): %w", idOrPrefix, len(match), errdefs.ErrNotFound)
	}
	return m.Get(match[0])
}

// Use claims a READY pod for a create or a start of one of its containers:
// the pod stays READY until the release, and a stop or remove of it waits
// for that. A pod that is not READY, or that a stop or remove holds or
// awaits, is FailedPrecondition.
func (m *Manager) Use(id string) (*Pod, func(), error) {
	e, err := m.entry(id)
	if err != nil {
		return nil, nil, err
	}
	release, err := e.gate.TryShare(claim.Using)
	if err != nil {
		return nil, nil, fmt.Errorf("pod %s: %w", id, err)
	}
	e.mu.Lock()
	p := e.pod
	e.mu.Unlock()
	if p.State != Ready || p.Creating {
		release()
		return nil, nil, fmt.Errorf("pod %s is not ready: %w", id, errdefs.ErrFailedPrecondition)
	}
	return &p, release, nil
}

// Claim waits until op (a stop or a remove) has the pod to itself: the
// creates and starts that use it end first, new ones are refused meanwhile,
// and another stop or remove waits its turn. It returns the record as it is
// under the claim, and the release. A pod removed meanwhile is NotFound.
func (m *Manager) Claim(ctx context.Context, id string, op claim.Op) (*Pod, func(), error) {
	e, err := m.entry(id)
	if err != nil {
		return nil, nil, err
	}
	release, err := e.gate.Take(ctx, op, false)
	if err != nil {
		return nil, nil, fmt.Errorf("pod %s: %w", id, err)
	}
	e.mu.Lock()
	p := e.pod
	e.mu.Unlock()
	return &p, release, nil
}

// MarkReady records a created pod READY once the rest of RunPodSandbox (its
// network) is done; from then on it is listed. A pod stopped meanwhile is
// FailedPrecondition.
func (m *Manager) MarkReady(id string) error {
	return m.update(id, func(next *Pod) (bool, error) {
		if !next.Creating {
			return false, fmt.Errorf("pod %s was stopped before it was ready: %w", id, errdefs.ErrFailedPrecondition)
		}
		next.State, next.Creating = Ready, false
		return true, nil
	})
}

// update has edit change a copy of the pod's record and, if it did, stores
// the copy before the pod takes it, all under the pod's lock.
func (m *Manager) update(id string, edit func(next *Pod) (changed bool, err error)) error {
	e, err := m.entry(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	next := e.pod
	changed, err := edit(&next)
	if err != nil || !changed {
		return err
	}
	if err := m.store.Put(id, &next); err != nil {
		return err
	}
	e.pod = next
	return nil
}

// List returns copies of every pod's record, newest first; pods still being
// created are not listed.
func (m *Manager) List() []*Pod {
	m.mu.RLock()
	entries := make([]*entry, 0, len(m.pods))
	for _, e := range m.pods {
		entries = append(entries, e)
	}
	m.mu.RUnlock()
	out := make([]*Pod, 0, len(entries))
	for _, e := range entries {
		e.mu.Lock()
		p := e.pod
		e.mu.Unlock()
		if !p.Creating {
			out = append(out, &p)
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

// SetNetwork records the pod's network attachment.
func (m *Manager) SetNetwork(id string, n *Network) error {
	return m.update(id, func(next *Pod) (bool, error) {
		next.Network = n
		return true, nil
	})
}

// Stop marks the pod NOTREADY (containers are stopped by the caller first);
// a pod being created is listed from then on, and MarkReady refuses it.
// Stopping a stopped pod is a no-op.
func (m *Manager) Stop(ctx context.Context, id string) error {
	return m.update(id, func(next *Pod) (bool, error) {
		if next.State == NotReady && !next.Creating {
			return false, nil
		}
		next.State, next.Creating = NotReady, false
		return true, nil
	})
}

// Remove releases the pod's namespaces, mounts and files, then its record.
// A missing pod is not an error. If a release step fails, the record stays
// (NOTREADY) so that a retry finishes the job.
func (m *Manager) Remove(ctx context.Context, id string) error {
	e, err := m.entry(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := m.release(&e.pod); err != nil {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	if err := m.store.Remove(id); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.pods, id)
	m.mu.Unlock()
	e.gate.Gone()
	return nil
}

// ProbeUserNamespace calls fn with the path of a new user namespace, gone
// when it returns, to check what the host can do with one.
func (m *Manager) ProbeUserNamespace(fn func(userns string) error) error {
	return m.os.ProbeUserNamespace(fn)
}
