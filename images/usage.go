package images

import (
	"errors"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// snapshotUsageTTL is how long a measured writable-layer usage is reused. The
// kubelet asks every few seconds; writable layers change under running
// containers, so they cannot be tracked from records like image layers are.
const snapshotUsageTTL = 10 * time.Second

type usageCache struct {
	mu       sync.Mutex
	at       time.Time
	bytes    int64
	inodes   int64
	measured bool
}

// SnapshotsUsage returns the disk use of the containers' writable layers,
// measured at most once per snapshotUsageTTL.
func (s *Service) SnapshotsUsage() (bytes, inodes int64, err error) {
	c := &s.snapUsage
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.measured && time.Since(c.at) < snapshotUsageTTL {
		return c.bytes, c.inodes, nil
	}
	b, n, err := diskUsage(s.snapshotsDir)
	if err != nil {
		return 0, 0, err
	}
	c.bytes, c.inodes, c.at, c.measured = b, n, time.Now(), true
	return b, n, nil
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
