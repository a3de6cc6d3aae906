package sandbox

// Recovery of pods at start-up. Assumptions:
//   - a record exists only for a pod whose namespaces, shm and files were all
//     made (Create writes it last) and it is removed only after they are gone;
//   - pins and shm mounts live under <state>/pods/<id>/ and nothing else does.
// So: every record is loaded; a READY pod whose pins or shm are no longer
// mounted (the node rebooted, /run was wiped) becomes NOTREADY, for the kubelet
// to stop and remove; a pod whose RunPodSandbox never finished (Creating) loses
// its record, and with it, like pod dirs without a record (half-created pods),
// its network attachment (the caller's, while its namespace exists), mounts
// and files. A record that exists but does not decode
// (corrupt, or a newer Berth's schema) still says the pod was made: the pod
// is not listed, but its dir, pins and shm are kept, its file left as it is,
// and Unreadable names it so that the network and the shim are kept too.

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/log"
)

// Recover loads every pod record. Call it once, before serving; then, once
// the network has detached the pods that are gone, RemoveOrphans.
func (m *Manager) Recover(ctx context.Context) error {
	return m.store.LoadAll(func(id string, decode func(any) error) error {
		var p Pod
		if err := decode(&p); err != nil {
			log.G(ctx).WithError(err).WithFields(log.Fields{"pod": id, "file": m.store.File(id)}).
				Error("unreadable pod record; keeping the pod's namespaces, network and shim, and the file for inspection")
			m.mu.Lock()
			m.unreadable[id] = true
			m.mu.Unlock()
			return nil
		}
		if p.Creating {
			log.G(ctx).WithField("pod", id).Info("removing a pod whose RunPodSandbox was cut short")
			return m.store.Remove(id)
		}
		if p.State == Ready && !m.intact(&p) {
			log.G(ctx).WithField("pod", id).Warn("pod lost its namespaces or shm; marking it NOTREADY")
			p.State = NotReady
			if err := m.store.Put(id, &p); err != nil {
				return err
			}
		}
		m.pods[id] = &entry{pod: p}
		return nil
	})
}

// Unreadable lists the ids of the pods whose records Recover could not read.
// Nothing they own (pins, shm, network attachment, shim, containers) may be
// taken for an orphan.
func (m *Manager) Unreadable() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return slices.Collect(maps.Keys(m.unreadable))
}

func (m *Manager) isUnreadable(id string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.unreadable[id]
}

func (m *Manager) intact(p *Pod) bool {
	for _, pin := range p.Pins {
		if !m.os.IsMountPoint(pin) {
			return false
		}
	}
	return p.ShmPath == "" || m.os.IsMountPoint(p.ShmPath)
}

// RemoveOrphans releases pod dirs that no record owns (pods half created or
// half removed when berthd stopped). Their network must be detached first,
// while their network namespace still exists.
func (m *Manager) RemoveOrphans(ctx context.Context) error {
	entries, err := os.ReadDir(m.stateDir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read pod state dir: %w", err)
	}
	for _, e := range entries {
		if _, ok := m.pods[e.Name()]; ok || m.isUnreadable(e.Name()) {
			continue
		}
		dir := filepath.Join(m.stateDir, e.Name())
		orphan := &Pod{ID: e.Name(), Dir: dir, ShmPath: filepath.Join(dir, "shm"), Pins: map[string]string{}}
		for _, k := range []string{UserNS, NetNS, IPCNS, UTSNS} {
			orphan.Pins[k] = filepath.Join(dir, "ns", k)
		}
		log.G(ctx).WithField("pod", e.Name()).Info("removing a half-created pod")
		if err := m.release(orphan); err != nil {
			return err
		}
	}
	return nil
}

// containsMountPoint reports whether mountinfo lists path as a mount point.
func containsMountPoint(mountinfo, path string) bool {
	for _, line := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}
