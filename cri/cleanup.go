package cri

import (
	"context"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
)

// cleanupTimeout bounds one rollback or cleanup. It is generous: a cleanup
// that gives up early leaks what it was undoing; one that never ends holds
// an object's name for ever.
const cleanupTimeout = 2 * time.Minute

// cleanupContext is the context a rollback runs on: the parent's values (its
// logger and fields) without its cancellation, since the request's context is
// often the reason for the rollback (its deadline passed, the kubelet left),
// and a deadline of its own.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// deleteInShim removes a container that the pod's shim may hold after a
// Create that failed once its request could have reached the shim (the
// caller's deadline passed while the shim worked, the connection was lost
// on the way back, or a later step failed). It runs on a fresh bounded
// context. The shim's Delete waits for its creates in flight and refuses a
// create of that ID that arrives later, so none can outlive the rollback;
// List only tells whether there was one, for the log.
func (s *Server) deleteInShim(ctx context.Context, pod, id string) {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	shim, err := s.shims.Lookup(ctx, pod)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).Warn("find the pod's shim to delete a container whose create failed")
		}
		return
	}
	ids, err := shim.List(ctx)
	if err != nil {
		log.G(ctx).WithError(err).Warn("list the shim's containers after a failed create")
	}
	if err := shim.Delete(ctx, id); err != nil {
		log.G(ctx).WithError(err).Error("delete a container whose create failed from the pod's shim; it stays there")
		return
	}
	if slices.Contains(ids, id) {
		log.G(ctx).Info("deleted from the pod's shim the container of a failed create")
	}
}
