package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/cri/nri"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
)

// NRIDomain is what the NRI host (cri/nri) needs of Berth: every pod and
// container as NRI values, and updates that plugins ask for. Its methods
// never call the host.
func (s *Server) NRIDomain() *NRIDomain { return &NRIDomain{s: s} }

// NRIDomain implements nri.Domain over the server's pods and containers.
type NRIDomain struct{ s *Server }

// List returns every pod and container Berth knows.
func (d *NRIDomain) List(context.Context) ([]*api.PodSandbox, []*api.Container, error) {
	var pods []*api.PodSandbox
	for _, p := range d.s.pods.List() {
		pods = append(pods, nriPod(p))
	}
	var ctrs []*api.Container
	if d.s.containers != nil {
		for _, c := range d.s.containers.List(nil) {
			ctrs = append(ctrs, d.s.nriContainer(c))
		}
	}
	return pods, ctrs, nil
}

// UpdateContainer applies resources a plugin asked for, as
// UpdateContainerResources would, without NRI events.
func (d *NRIDomain) UpdateContainer(ctx context.Context, id string, r *api.LinuxResources) error {
	c, err := d.s.containers.Get(id)
	if err != nil {
		return err
	}
	oci := r.ToOCI()
	if oci == nil {
		return nil
	}
	u := container.ResourceUpdate{Linux: oci, Record: recordFromOCI(oci, c.Resources)}
	if c.Resources != nil {
		u.Previous = d.s.resources(criResources(c.Resources))
	}
	if err := d.s.containers.UpdateResources(ctx, id, u); err != nil {
		return err
	}
	d.s.nriSpecs.load(c)
	d.s.nriSpecs.update(id, func(sp *specs.Spec) {
		if sp.Linux != nil {
			sp.Linux.Resources = oci
		}
	})
	return nil
}

// EvictContainer: Berth does not evict for plugins yet.
func (d *NRIDomain) EvictContainer(_ context.Context, id, reason string) error {
	return fmt.Errorf("evict container %s (%s): %w", id, reason, errdefs.ErrNotImplemented)
}

// recordFromOCI is the record of a container's resources once a plugin's
// update r is applied over prev: the fields r sets replace prev's, the rest
// (oom_score_adj among them: the process's) stay.
func recordFromOCI(r *specs.LinuxResources, prev *container.Resources) *container.Resources {
	out := &container.Resources{}
	if prev != nil {
		*out = *prev
		out.Hugepages, out.Unified = maps.Clone(prev.Hugepages), maps.Clone(prev.Unified)
	}
	if c := r.CPU; c != nil {
		setFrom(&out.CPUPeriod, c.Period, func(v uint64) int64 { return int64(v) })
		setFrom(&out.CPUQuota, c.Quota, func(v int64) int64 { return v })
		setFrom(&out.CPUShares, c.Shares, func(v uint64) int64 { return int64(v) })
		if c.Cpus != "" {
			out.CpusetCPUs = c.Cpus
		}
		if c.Mems != "" {
			out.CpusetMems = c.Mems
		}
	}
	if m := r.Memory; m != nil {
		setFrom(&out.MemoryLimit, m.Limit, func(v int64) int64 { return v })
		setFrom(&out.MemorySwapLimit, m.Swap, func(v int64) int64 { return v })
	}
	for _, h := range r.HugepageLimits {
		if out.Hugepages == nil {
			out.Hugepages = map[string]uint64{}
		}
		out.Hugepages[h.Pagesize] = h.Limit
	}
	if len(r.Unified) > 0 {
		if out.Unified == nil {
			out.Unified = map[string]string{}
		}
		maps.Copy(out.Unified, r.Unified)
	}
	return out
}

func setFrom[T any](dst *int64, v *T, conv func(T) int64) {
	if v != nil {
		*dst = conv(*v)
	}
}

// nriPod is a pod as NRI plugins see it.
func nriPod(p *sandbox.Pod) *api.PodSandbox {
	out := &api.PodSandbox{Id: p.ID, Name: p.Spec.Name, Uid: p.Spec.UID, Namespace: p.Spec.Namespace,
		Labels: maps.Clone(p.Spec.Labels), Annotations: maps.Clone(p.Spec.Annotations),
		RuntimeHandler: p.Spec.RuntimeHandler,
		Linux:          &api.LinuxPodSandbox{CgroupParent: cgroupParent(p), CgroupsPath: cgroupParent(p)}}
	for _, kind := range []string{sandbox.NetNS, sandbox.IPCNS, sandbox.UTSNS} {
		if path, ok := p.Pins[kind]; ok {
			typ := kind
			if kind == sandbox.NetNS {
				typ = "network"
			}
			out.Linux.Namespaces = append(out.Linux.Namespaces, &api.LinuxNamespace{Type: typ, Path: path})
		}
	}
	if p.Network != nil {
		out.Ips = append(out.Ips, p.Network.IPs...)
	}
	return out
}

// nriContainer is a container as NRI plugins see it: its record, and the
// spec it was created with while this berthd knows it.
func (s *Server) nriContainer(c *container.Container) *api.Container {
	out := &api.Container{Id: c.ID, PodSandboxId: c.PodID, Name: c.Name, State: nriState(c.State),
		Labels: maps.Clone(c.Labels), Annotations: maps.Clone(c.Annotations),
		CreatedAt: c.CreatedAt.UnixNano(), ExitCode: c.ExitCode, StatusReason: c.Reason, StatusMessage: c.Message,
		Image: &api.Image{Name: c.Image}}
	if !c.StartedAt.IsZero() {
		out.StartedAt = c.StartedAt.UnixNano()
	}
	if !c.FinishedAt.IsZero() {
		out.FinishedAt = c.FinishedAt.UnixNano()
	}
	s.nriSpecs.load(c)
	s.nriSpecs.update(c.ID, func(sp *specs.Spec) {
		nri.ContainerSpec(out, sp)
		out.Annotations = mergeAnnotations(out.Annotations, sp.Annotations)
	})
	return out
}

// mergeAnnotations: the spec's annotations (the CRI ones, Berth's and what
// plugins added) over the record's.
func mergeAnnotations(rec, spec map[string]string) map[string]string {
	if len(spec) == 0 {
		return rec
	}
	out := maps.Clone(rec)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, spec)
	return out
}

func nriState(st container.State) api.ContainerState {
	switch st {
	case container.Created:
		return api.ContainerState_CONTAINER_CREATED
	case container.Running:
		return api.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		return api.ContainerState_CONTAINER_STOPPED
	}
	return api.ContainerState_CONTAINER_UNKNOWN
}

// specCache keeps the OCI spec each container was created with, for the
// NRI events that follow its creation, as resource updates change it. After
// a restart it is loaded from the container's record (Container.Spec) on
// first use.
type specCache struct {
	mu sync.Mutex
	m  map[string]*specs.Spec
}

func (c *specCache) put(id string, sp *specs.Spec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*specs.Spec{}
	}
	c.m[id] = sp
}

// load caches the spec of ctr's record unless a spec is cached.
func (c *specCache) load(ctr *container.Container) {
	if len(ctr.Spec) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ctr.ID] != nil {
		return
	}
	var sp specs.Spec
	if json.Unmarshal(ctr.Spec, &sp) != nil {
		return
	}
	if c.m == nil {
		c.m = map[string]*specs.Spec{}
	}
	c.m[ctr.ID] = &sp
}

func (c *specCache) update(id string, fn func(*specs.Spec)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sp := c.m[id]; sp != nil {
		fn(sp)
	}
}

func (c *specCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}
