package images

import (
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// diskFull turns a failure for want of space, ENOSPC or EDQUOT (a quota),
// at any write of a pull (a blob's ingest, a layer's files, a sync, a
// record), into the error the pull reports: ResourceExhausted (which the
// CRI maps to its gRPC code), naming the filesystem and keeping the errno,
// and no other sentinel of the cause (a full disk is the news, whatever
// else the failed step wrapped).
func diskFull(root string, err error) (error, bool) {
	for _, errno := range []unix.Errno{unix.ENOSPC, unix.EDQUOT} {
		if errors.Is(err, errno) {
			return fmt.Errorf("disk full: no space left for images under %s (%w): %v: %w",
				root, errno, err, errdefs.ErrResourceExhausted), true
		}
	}
	return err, false
}
