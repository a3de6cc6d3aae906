package nri

import (
	"maps"
	"slices"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ContainerSpec fills what plugins see of a container's OCI spec into ctr
// (args, env, mounts, hooks, rlimits, user, and the Linux part: namespaces,
// devices, resources, oom_score_adj, cgroups path, I/O priority, seccomp
// policy, sysctls, net devices, scheduler, RDT), leaving the rest of ctr
// (ids, name, state, labels, annotations, times, image) to the caller. cri/
// calls it with the spec it built (CreateContainer) or keeps (later events).
func ContainerSpec(ctr *api.Container, spec *specs.Spec) {
	if ctr == nil || spec == nil {
		return
	}
	if p := spec.Process; p != nil {
		ctr.Args = slices.Clone(p.Args)
		ctr.Env = slices.Clone(p.Env)
		ctr.User = &api.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: slices.Clone(p.User.AdditionalGids)}
		for _, r := range p.Rlimits {
			ctr.Rlimits = append(ctr.Rlimits, &api.POSIXRlimit{Type: r.Type, Hard: r.Hard, Soft: r.Soft})
		}
	}
	ctr.Mounts = api.FromOCIMounts(spec.Mounts)
	ctr.Hooks = api.FromOCIHooks(spec.Hooks)
	l := spec.Linux
	if l == nil {
		return
	}
	lc := &api.LinuxContainer{
		Namespaces:  api.FromOCILinuxNamespaces(l.Namespaces),
		Devices:     api.FromOCILinuxDevices(l.Devices),
		Resources:   api.FromOCILinuxResources(l.Resources, spec.Annotations),
		CgroupsPath: l.CgroupsPath,
		Sysctl:      maps.Clone(l.Sysctl),
		NetDevices:  api.FromOCILinuxNetDevices(l.NetDevices),
	}
	if l.Seccomp != nil {
		lc.SeccompPolicy = api.FromOCILinuxSeccomp(l.Seccomp)
	}
	if r := l.IntelRdt; r != nil {
		lc.Rdt = &api.LinuxRdt{ClosId: api.String(r.ClosID), Schemata: api.RepeatedString(r.Schemata), EnableMonitoring: api.Bool(r.EnableMonitoring)}
	}
	if p := spec.Process; p != nil {
		lc.OomScoreAdj = api.Int(p.OOMScoreAdj)
		lc.IoPriority = api.FromOCILinuxIOPriority(p.IOPriority)
		lc.Scheduler = api.FromOCILinuxScheduler(p.Scheduler)
	}
	ctr.Linux = lc
}
