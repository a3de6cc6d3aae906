package nri

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// knownNamespaces are the OCI namespace types.
var knownNamespaces = map[string]bool{
	string(specs.PIDNamespace): true, string(specs.NetworkNamespace): true, string(specs.MountNamespace): true,
	string(specs.IPCNamespace): true, string(specs.UTSNamespace): true, string(specs.UserNamespace): true,
	string(specs.CgroupNamespace): true, string(specs.TimeNamespace): true,
}

func checkLinux(l *api.LinuxContainerAdjustment) error {
	if l == nil {
		return nil
	}
	for _, d := range l.GetDevices() {
		p, removed := d.IsMarkedForRemoval()
		field := fmt.Sprintf("linux.devices[%s]", d.GetPath())
		if !path.IsAbs(p) {
			return invalid(field, "path must be absolute")
		}
		if !removed && !slices.Contains([]string{"b", "c", "u", "p"}, d.GetType()) {
			return invalid(field+".type", "%q is not one of b, c, u, p", d.GetType())
		}
	}
	if v := l.GetOomScoreAdj().Get(); v != nil && (*v < -1000 || *v > 1000) {
		return invalid("linux.oom_score_adj", "%d is outside [-1000, 1000]", *v)
	}
	for _, n := range l.GetNamespaces() {
		t, _ := n.IsMarkedForRemoval()
		if !knownNamespaces[t] {
			return invalid("linux.namespaces", "unknown namespace type %q", n.GetType())
		}
	}
	for _, k := range sortedKeys(l.GetNetDevices()) {
		if name, _ := api.IsMarkedForRemoval(k); name == "" || strings.ContainsAny(name, "/ \x00") {
			return invalid("linux.net_devices", "bad host device name %q", k)
		}
	}
	for _, k := range sortedKeys(l.GetSysctl()) {
		if name, _ := api.IsMarkedForRemoval(k); name == "" {
			return invalid("linux.sysctl", "empty key")
		}
	}
	return checkResources(l.GetResources())
}

func checkResources(r *api.LinuxResources) error {
	if r == nil {
		return nil
	}
	mem := r.GetMemory()
	switch {
	case mem.GetKernel() != nil:
		return unsupported("linux.resources.memory.kernel", "runc ignores kernel memory limits")
	case mem.GetKernelTcp() != nil:
		return unsupported("linux.resources.memory.kernel_tcp", "runc ignores kernel memory limits")
	case mem.GetUseHierarchy() != nil:
		return unsupported("linux.resources.memory.use_hierarchy", "runc does not set it")
	}
	if c := r.GetBlockioClass().Get(); c != nil && *c != "" {
		return unsupported(fmt.Sprintf("linux.resources.blockio_class (%s)", *c), "Berth has no block I/O class configuration")
	}
	if c := r.GetRdtClass().Get(); c != nil && *c != "" {
		return unsupported(fmt.Sprintf("linux.resources.rdt_class (%s)", *c), "Berth has no RDT class configuration (linux.rdt is applied)")
	}
	for _, h := range r.GetHugepageLimits() {
		if h.GetPageSize() == "" {
			return invalid("linux.resources.hugepage_limits", "empty page size")
		}
	}
	for i, d := range r.GetDevices() {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		if !slices.Contains([]string{"", "a", "b", "c"}, d.GetType()) {
			return invalid(field+".type", "%q is not one of a, b, c", d.GetType())
		}
		if strings.Trim(d.GetAccess(), "rwm") != "" {
			return invalid(field+".access", "%q is not made of r, w, m", d.GetAccess())
		}
	}
	return nil
}

func adjustLinux(spec *specs.Spec, l *api.LinuxContainerAdjustment) {
	if l == nil {
		return
	}
	adjustDevices(spec, l.GetDevices())
	adjustResources(spec, l.GetResources())
	if p := l.GetCgroupsPath(); p != "" {
		spec.Linux.CgroupsPath = p
	}
	if v := l.GetOomScoreAdj().Get(); v != nil {
		score := *v
		spec.Process.OOMScoreAdj = &score
	}
	if p := l.GetIoPriority(); p != nil {
		spec.Process.IOPriority = p.ToOCI()
		if spec.Process.IOPriority.Class == "" { // IOPRIO_CLASS_NONE: the default
			spec.Process.IOPriority = nil
		}
	}
	if s := l.GetSeccompPolicy(); s != nil {
		spec.Linux.Seccomp = seccompToOCI(s)
	}
	adjustNamespaces(spec.Linux, l.GetNamespaces())
	spec.Linux.Sysctl = adjustMap(spec.Linux.Sysctl, l.GetSysctl())
	adjustNetDevices(spec.Linux, l.GetNetDevices())
	if s := l.GetScheduler(); s != nil {
		spec.Process.Scheduler = s.ToOCI() // SCHED_NONE: nil, the default
	}
	adjustRdt(spec.Linux, l.GetRdt())
	if m := l.GetMemoryPolicy(); m != nil {
		spec.Linux.MemoryPolicy = m.ToOCI()
	}
}

func seccompToOCI(s *api.LinuxSeccomp) *specs.LinuxSeccomp {
	out := &specs.LinuxSeccomp{
		DefaultAction:    specs.LinuxSeccompAction(s.GetDefaultAction()),
		ListenerPath:     s.GetListenerPath(),
		ListenerMetadata: s.GetListenerMetadata(),
		Syscalls:         api.ToOCILinuxSyscalls(s.GetSyscalls()),
	}
	if e := s.GetDefaultErrno().Get(); e != nil {
		errno := uint(*e)
		out.DefaultErrnoRet = &errno
	}
	for _, a := range s.GetArchitectures() {
		out.Architectures = append(out.Architectures, specs.Arch(a))
	}
	for _, f := range s.GetFlags() {
		out.Flags = append(out.Flags, specs.LinuxSeccompFlag(f))
	}
	return out
}

// adjustDevices removes the devices marked (and the rule allowing them) and
// adds or replaces, by path, the others, each with a rule allowing it.
func adjustDevices(spec *specs.Spec, devices []*api.LinuxDevice) {
	for _, d := range devices {
		p, removed := d.IsMarkedForRemoval()
		if i := slices.IndexFunc(spec.Linux.Devices, func(x specs.LinuxDevice) bool { return x.Path == p }); i >= 0 {
			old := spec.Linux.Devices[i]
			spec.Linux.Devices = slices.Delete(spec.Linux.Devices, i, i+1)
			if spec.Linux.Resources != nil {
				spec.Linux.Resources.Devices = slices.DeleteFunc(spec.Linux.Resources.Devices, func(r specs.LinuxDeviceCgroup) bool {
					return r.Allow && r.Type == old.Type && r.Major != nil && *r.Major == old.Major && r.Minor != nil && *r.Minor == old.Minor
				})
			}
		}
		if removed {
			continue
		}
		spec.Linux.Devices = append(spec.Linux.Devices, d.ToOCI())
		if d.GetType() == "b" || d.GetType() == "c" {
			major, minor := d.GetMajor(), d.GetMinor()
			resources(spec.Linux).Devices = append(resources(spec.Linux).Devices,
				specs.LinuxDeviceCgroup{Allow: true, Type: d.GetType(), Major: &major, Minor: &minor, Access: d.AccessString()})
		}
	}
}

func resources(l *specs.Linux) *specs.LinuxResources {
	if l.Resources == nil {
		l.Resources = &specs.LinuxResources{}
	}
	return l.Resources
}

func adjustResources(spec *specs.Spec, r *api.LinuxResources) {
	if r == nil {
		return
	}
	adjustCPU(spec.Linux, r.GetCpu())
	adjustMemory(spec.Linux, r.GetMemory())
	for _, h := range r.GetHugepageLimits() {
		res := resources(spec.Linux)
		limit := specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()}
		if i := slices.IndexFunc(res.HugepageLimits, func(x specs.LinuxHugepageLimit) bool { return x.Pagesize == limit.Pagesize }); i >= 0 {
			res.HugepageLimits[i] = limit
		} else {
			res.HugepageLimits = append(res.HugepageLimits, limit)
		}
	}
	if len(r.GetUnified()) > 0 {
		res := resources(spec.Linux)
		res.Unified = adjustMap(res.Unified, r.GetUnified())
	}
	if p := r.GetPids(); p != nil {
		limit := p.GetLimit()
		resources(spec.Linux).Pids = &specs.LinuxPids{Limit: &limit}
	}
	for _, d := range r.GetDevices() {
		resources(spec.Linux).Devices = append(resources(spec.Linux).Devices,
			specs.LinuxDeviceCgroup{Allow: d.GetAllow(), Type: d.GetType(), Major: d.GetMajor().Get(), Minor: d.GetMinor().Get(), Access: d.GetAccess()})
	}
}

func adjustCPU(l *specs.Linux, c *api.LinuxCPU) {
	if c == nil || (c.Shares == nil && c.Quota == nil && c.Period == nil && c.RealtimeRuntime == nil && c.RealtimePeriod == nil &&
		c.Cpus == "" && c.Mems == "") {
		return
	}
	res := resources(l)
	if res.CPU == nil {
		res.CPU = &specs.LinuxCPU{}
	}
	setIf(&res.CPU.Shares, c.GetShares().Get())
	setIf(&res.CPU.Quota, c.GetQuota().Get())
	setIf(&res.CPU.Period, c.GetPeriod().Get())
	setIf(&res.CPU.RealtimeRuntime, c.GetRealtimeRuntime().Get())
	setIf(&res.CPU.RealtimePeriod, c.GetRealtimePeriod().Get())
	if c.GetCpus() != "" {
		res.CPU.Cpus = c.GetCpus()
	}
	if c.GetMems() != "" {
		res.CPU.Mems = c.GetMems()
	}
}

// adjustMemory sets what is given. A new limit without a swap limit keeps
// the swap limit valid: one that meant "no swap" (equal to the old limit)
// or that would fall below the new limit follows it.
func adjustMemory(l *specs.Linux, m *api.LinuxMemory) {
	if m == nil || (m.Limit == nil && m.Reservation == nil && m.Swap == nil && m.Swappiness == nil && m.DisableOomKiller == nil) {
		return
	}
	res := resources(l)
	if res.Memory == nil {
		res.Memory = &specs.LinuxMemory{}
	}
	mem := res.Memory
	if v := m.GetLimit().Get(); v != nil {
		if m.GetSwap() == nil && mem.Swap != nil && *mem.Swap != -1 && ((mem.Limit != nil && *mem.Swap == *mem.Limit) || *mem.Swap < *v) {
			swap := *v
			mem.Swap = &swap
		}
		setIf(&mem.Limit, v)
	}
	setIf(&mem.Reservation, m.GetReservation().Get())
	setIf(&mem.Swap, m.GetSwap().Get())
	setIf(&mem.Swappiness, m.GetSwappiness().Get())
	setIf(&mem.DisableOOMKiller, m.GetDisableOomKiller().Get())
}

// setIf sets *dst to a copy of *v when v is given.
func setIf[T any](dst **T, v *T) {
	if v != nil {
		c := *v
		*dst = &c
	}
}

// adjustNamespaces removes the types marked and adds or replaces (by type)
// the others.
func adjustNamespaces(l *specs.Linux, namespaces []*api.LinuxNamespace) {
	for _, n := range namespaces {
		t, removed := n.IsMarkedForRemoval()
		i := slices.IndexFunc(l.Namespaces, func(x specs.LinuxNamespace) bool { return string(x.Type) == t })
		switch {
		case removed && i >= 0:
			l.Namespaces = slices.Delete(l.Namespaces, i, i+1)
		case removed:
		case i >= 0:
			l.Namespaces[i].Path = n.GetPath()
		default:
			l.Namespaces = append(l.Namespaces, specs.LinuxNamespace{Type: specs.LinuxNamespaceType(t), Path: n.GetPath()})
		}
	}
}

func adjustNetDevices(l *specs.Linux, devices map[string]*api.LinuxNetDevice) {
	if len(devices) == 0 {
		return
	}
	oci := make(map[string]specs.LinuxNetDevice, len(devices))
	for k, d := range devices {
		oci[k] = d.ToOCI()
	}
	l.NetDevices = adjustMap(l.NetDevices, oci)
}

func adjustRdt(l *specs.Linux, r *api.LinuxRdt) {
	if r == nil {
		return
	}
	if r.GetRemove() {
		l.IntelRdt = nil
	}
	closID, schemata, monitoring := r.GetClosId().Get(), r.GetSchemata().Get(), r.GetEnableMonitoring().Get()
	if closID == nil && schemata == nil && monitoring == nil {
		return
	}
	if l.IntelRdt == nil {
		l.IntelRdt = &specs.LinuxIntelRdt{}
	}
	if closID != nil {
		l.IntelRdt.ClosID = *closID
	}
	if schemata != nil {
		l.IntelRdt.Schemata = slices.Clone(*schemata)
	}
	if monitoring != nil {
		l.IntelRdt.EnableMonitoring = *monitoring
	}
}
