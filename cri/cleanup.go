package cri

import (
	"context"
	"time"
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
