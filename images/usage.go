package images

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
)

// snapshotUsageTTL is how long a measured writable-layer usage is reused. The
// kubelet asks every few seconds; writable layers change under running
// containers, so they cannot be tracked from records like image layers are.
const snapshotUsageTTL = 10 * time.Second

type usageCache struct {
	mu       sync.Mutex
	at       time.Time
	measured bool
	total    usage
	byKey    map[string]usage
}

type usage struct{ bytes, inodes int64 }

// SnapshotsUsage returns the disk use of the containers' writable layers,
// measured at most once per snapshotUsageTTL.
func (s *Service) SnapshotsUsage() (bytes, inodes int64, err error) {
	total, _, err := s.measureSnapshots()
	return total.bytes, total.inodes, err
}

// SnapshotUsage returns the disk use of one container's writable layer (key
// is the container ID), from the same measure as SnapshotsUsage. A snapshot
// made since that measure is measured on its own (a container's first
// stats, within the TTL of an earlier measure, would have none); one that
// does not exist is NotFound.
func (s *Service) SnapshotUsage(key string) (bytes, inodes int64, err error) {
	_, byKey, err := s.measureSnapshots()
	if err != nil {
		return 0, 0, err
	}
	if u, ok := byKey[key]; ok {
		return u.bytes, u.inodes, nil
	}
	dir := filepath.Join(s.snapshotsDir, key)
	if filepath.Base(key) != key || key == "." || key == ".." {
		return 0, 0, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return 0, 0, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return diskUsage(dir)
}

// measureSnapshots walks the snapshots dir, one snapshot at a time, unless
// the last walk is recent enough.
func (s *Service) measureSnapshots() (usage, map[string]usage, error) {
	c := &s.snapUsage
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.measured && time.Since(c.at) < snapshotUsageTTL {
		return c.total, c.byKey, nil
	}
	entries, err := os.ReadDir(s.snapshotsDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return usage{}, nil, err
	}
	total, byKey := usage{inodes: 1}, map[string]usage{}
	for _, e := range entries {
		b, n, err := diskUsage(filepath.Join(s.snapshotsDir, e.Name()))
		if err != nil {
			return usage{}, nil, err
		}
		byKey[e.Name()] = usage{b, n}
		total.bytes, total.inodes = total.bytes+b, total.inodes+n
	}
	c.total, c.byKey, c.at, c.measured = total, byKey, time.Now(), true
	return total, byKey, nil
}

// diskUsage sums the allocated bytes and counts the inodes under dir, counting
// hard-linked files once.
func diskUsage(dir string) (bytes, inodes int64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return ignoreVanished(err)
		}
		fi, err := d.Info()
		if err != nil {
			return ignoreVanished(err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		bytes += st.Blocks * 512
		inodes++
		return nil
	})
	return bytes, inodes, err
}

// ignoreVanished lets a walk go on past files that running containers delete.
func ignoreVanished(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
