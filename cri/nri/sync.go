package nri

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/log"
	"github.com/containerd/nri/pkg/adaptation"
	"github.com/containerd/nri/pkg/api"
)

// synchronise is the nri library's SyncFn: it runs when the pre-installed
// plugins start and when an external plugin registers, with the plugin sync
// lock held for writing (no creation in flight, see Block). Under h.mu no
// event goes out meanwhile, so the plugin sees the list and then every event
// after it, in order.
func (h *Host) synchronise(ctx context.Context, cb adaptation.SyncCB) error {
	h.mu.Lock()
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	pods, ctrs, err := h.domain.List(lctx)
	cancel()
	if err != nil {
		h.mu.Unlock()
		return fmt.Errorf("list pods and containers for an NRI plugin: %w", err)
	}
	h.states.seed(ctrs)
	updates, err := cb(ctx, pods, ctrs)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	h.applySolicited(ctx, "synchronize", updates, nil)
	return nil
}

// updateFromPlugin is the nri library's UpdateFn: a plugin's unsolicited
// updates. It answers with the updates that failed and were not to be
// ignored; the reasons are logged (an error would reach the plugin instead
// of that list).
func (h *Host) updateFromPlugin(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	log.G(ctx).WithField("updates", len(updates)).Info("NRI plugin updates containers")
	failed, err := h.applyUpdates(ctx, updates)
	if err != nil {
		log.G(ctx).WithError(err).Warn("NRI plugin's updates failed")
	}
	return failed, nil
}

// applyUpdates applies each update through Domain.UpdateContainer, on a
// bounded context of its own. A failure of an update marked IgnoreFailure
// is only logged.
func (h *Host) applyUpdates(ctx context.Context, updates []*api.ContainerUpdate) ([]*api.ContainerUpdate, error) {
	var failed []*api.ContainerUpdate
	var errs []error
	for _, u := range updates {
		if u == nil {
			continue
		}
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), updateTimeout)
		err := h.domain.UpdateContainer(uctx, u.GetContainerId(), u.GetLinux().GetResources())
		cancel()
		if err == nil {
			continue
		}
		l := log.G(ctx).WithError(err).WithField("container", u.GetContainerId())
		if u.GetIgnoreFailure() {
			l.Debug("NRI update failed (ignored, as the plugin asked)")
			continue
		}
		l.Warn("NRI update failed")
		failed = append(failed, u)
		errs = append(errs, fmt.Errorf("update container %s: %w", u.GetContainerId(), err))
	}
	return failed, errors.Join(errs...)
}

// applySolicited applies the updates and evictions that plugins returned
// with an event. As in containerd, their failure does not fail the event:
// it is logged.
func (h *Host) applySolicited(ctx context.Context, event string, updates []*api.ContainerUpdate, evictions []*api.ContainerEviction) {
	for _, e := range evictions {
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), updateTimeout)
		err := h.domain.EvictContainer(ectx, e.GetContainerId(), e.GetReason())
		cancel()
		if err != nil {
			log.G(ctx).WithError(err).WithField("container", e.GetContainerId()).Warnf("NRI eviction after %s failed", event)
		}
	}
	if _, err := h.applyUpdates(ctx, updates); err != nil {
		log.G(ctx).WithError(err).Warnf("NRI updates after %s failed", event)
	}
}
