package images

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// diskSync makes unpacked layers durable. It is a seam so that tests can see
// (and fail) the syncs in their order among the renames and records.
type diskSync struct {
	// fs flushes the whole filesystem that holds dir (syncfs(2)): one call
	// covers every file of an unpacked layer.
	fs func(dir string) error
	// dir flushes dir's own entries (fsync(2) of the directory), so that a
	// rename into it survives a power loss.
	dir func(dir string) error
}

var osDiskSync = diskSync{fs: syncFS, dir: syncDir}

func syncFS(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
