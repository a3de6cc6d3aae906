package nri

import (
	"context"
	"fmt"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
)

// fakeDomain is what cri/ will be to the host: a list of objects and the
// updates plugins asked for.
type fakeDomain struct {
	mu      sync.Mutex
	pods    []*api.PodSandbox
	ctrs    []*api.Container
	updates []string // "<id> shares=<n>"
}

func (d *fakeDomain) List(context.Context) ([]*api.PodSandbox, []*api.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*api.PodSandbox(nil), d.pods...), append([]*api.Container(nil), d.ctrs...), nil
}

func (d *fakeDomain) UpdateContainer(_ context.Context, id string, r *api.LinuxResources) error {
	if id == "missing" {
		return fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.updates = append(d.updates, fmt.Sprintf("%s shares=%d", id, r.GetCpu().GetShares().GetValue()))
	return nil
}

func (d *fakeDomain) EvictContainer(_ context.Context, id, reason string) error {
	return fmt.Errorf("evict %s: %w", id, errdefs.ErrNotImplemented)
}

func (d *fakeDomain) add(pod *api.PodSandbox, ctr *api.Container) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pod != nil {
		d.pods = append(d.pods, pod)
	}
	if ctr != nil {
		d.ctrs = append(d.ctrs, ctr)
	}
}

func (d *fakeDomain) updated() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.updates...)
}

// syncer signals its plugin's synchronisation and keeps what it was given.
type syncer struct {
	synced   chan struct{}
	mu       sync.Mutex
	syncPods []*api.PodSandbox
	syncCtrs []*api.Container
}

func newSyncer() syncer { return syncer{synced: make(chan struct{}, 1)} }

func (s *syncer) Synchronize(_ context.Context, pods []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	s.mu.Lock()
	s.syncPods, s.syncCtrs = pods, ctrs
	s.mu.Unlock()
	s.synced <- struct{}{}
	return nil, nil
}

// recorder is a plugin that records every event it sees, in order, with
// the data it was given.
type recorder struct {
	syncer
	mu     sync.Mutex
	events []string
	seen   map[string]*api.Container // by event, the container it carried
	pods   map[string]*api.PodSandbox
	// adjust answers CreateContainer; update answers UpdateContainer.
	adjust func(*api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error)
	update func(*api.Container, *api.LinuxResources) ([]*api.ContainerUpdate, error)
}

func newRecorder() *recorder {
	return &recorder{syncer: newSyncer(), seen: map[string]*api.Container{}, pods: map[string]*api.PodSandbox{}}
}

func (r *recorder) record(event string, pod *api.PodSandbox, ctr *api.Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	name := event + " " + pod.GetId()
	if ctr != nil {
		name += "/" + ctr.GetId()
		r.seen[event] = ctr
	}
	r.pods[event] = pod
	r.events = append(r.events, name)
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (r *recorder) RunPodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.record("RunPodSandbox", p, nil)
	return nil
}

func (r *recorder) UpdatePodSandbox(_ context.Context, p *api.PodSandbox, _, _ *api.LinuxResources) error {
	r.record("UpdatePodSandbox", p, nil)
	return nil
}

func (r *recorder) PostUpdatePodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.record("PostUpdatePodSandbox", p, nil)
	return nil
}

func (r *recorder) StopPodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.record("StopPodSandbox", p, nil)
	return nil
}

func (r *recorder) RemovePodSandbox(_ context.Context, p *api.PodSandbox) error {
	r.record("RemovePodSandbox", p, nil)
	return nil
}

func (r *recorder) CreateContainer(_ context.Context, p *api.PodSandbox, c *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	r.record("CreateContainer", p, c)
	if r.adjust != nil {
		return r.adjust(c)
	}
	return nil, nil, nil
}

func (r *recorder) PostCreateContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	r.record("PostCreateContainer", p, c)
	return nil
}

func (r *recorder) StartContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	r.record("StartContainer", p, c)
	return nil
}

func (r *recorder) PostStartContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	r.record("PostStartContainer", p, c)
	return nil
}

func (r *recorder) UpdateContainer(_ context.Context, p *api.PodSandbox, c *api.Container, res *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	r.record("UpdateContainer", p, c)
	if r.update != nil {
		return r.update(c, res)
	}
	return nil, nil
}

func (r *recorder) PostUpdateContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	r.record("PostUpdateContainer", p, c)
	return nil
}

func (r *recorder) StopContainer(_ context.Context, p *api.PodSandbox, c *api.Container) ([]*api.ContainerUpdate, error) {
	r.record("StopContainer", p, c)
	return nil, nil
}

func (r *recorder) RemoveContainer(_ context.Context, p *api.PodSandbox, c *api.Container) error {
	r.record("RemoveContainer", p, c)
	return nil
}
