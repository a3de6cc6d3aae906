package nri

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ApplyAdjustment applies what plugins asked of a container (the result of
// Host.CreateContainer) to its OCI spec, before the container is created.
// It first checks every field and changes nothing if one is refused: a
// malformed value fails with errdefs.ErrInvalidArgument, a field Berth
// cannot honour yet with errdefs.ErrNotImplemented, each naming the field
// (as the NRI API spells it). Removals are keys marked with a leading '-'.
//
// Applied: annotations, args, env, mounts (rootfs propagation raised for
// rshared/rslave ones), hooks (all six kinds), rlimits, linux.devices (with
// their device-cgroup rule), linux.resources (cpu, memory limit /
// reservation / swap / swappiness / disable_oom_killer, hugepage limits,
// unified, pids, device rules), linux.cgroups_path, linux.oom_score_adj,
// linux.io_priority, linux.seccomp_policy, linux.namespaces, linux.sysctl,
// linux.net_devices, linux.scheduler, linux.rdt, linux.memory_policy.
//
// Refused (ErrNotImplemented): CDI_devices (Berth has no CDI registry),
// the "relabel" mount option (SELinux relabelling of a plugin's source),
// linux.resources.blockio_class and rdt_class (no class configuration),
// linux.resources.memory.kernel, kernel_tcp and use_hierarchy (runc ignores
// them).
//
// ApplyAdjustment does no I/O: it does not check that a mount's source is
// a shared mount. cri/ applies its own host rules after it (oom_score_adj
// floor, hugetlb presence).
func ApplyAdjustment(spec *specs.Spec, adj *api.ContainerAdjustment) error {
	if adj == nil {
		return nil
	}
	if spec == nil {
		return fmt.Errorf("no spec to adjust: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkAdjustment(adj); err != nil {
		return err
	}
	if spec.Process == nil {
		spec.Process = &specs.Process{}
	}
	if spec.Linux == nil {
		spec.Linux = &specs.Linux{}
	}
	spec.Annotations = adjustMap(spec.Annotations, adj.GetAnnotations())
	adjustEnv(spec.Process, adj.GetEnv())
	if len(adj.GetArgs()) > 0 {
		spec.Process.Args = slices.Clone(adj.GetArgs())
	}
	adjustHooks(spec, adj.GetHooks())
	adjustRlimits(spec.Process, adj.GetRlimits())
	adjustMounts(spec, adj.GetMounts())
	adjustLinux(spec, adj.GetLinux())
	return nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("NRI adjustment %s: %s: %w", field, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
}

func unsupported(field, why string) error {
	return fmt.Errorf("NRI adjustment %s: %s: %w", field, why, errdefs.ErrNotImplemented)
}

// checkAdjustment refuses what ApplyAdjustment would not apply, before
// anything changes.
func checkAdjustment(adj *api.ContainerAdjustment) error {
	if d := adj.GetCDIDevices(); len(d) > 0 {
		return unsupported(fmt.Sprintf("CDI_devices (%s)", d[0].GetName()), "CDI devices are not supported yet")
	}
	for _, e := range adj.GetEnv() {
		key, _ := api.IsMarkedForRemoval(e.GetKey())
		if key == "" || strings.ContainsAny(key, "=\x00") {
			return invalid("env", "bad variable name %q", e.GetKey())
		}
	}
	for _, m := range adj.GetMounts() {
		dest, removed := m.IsMarkedForRemoval()
		field := fmt.Sprintf("mounts[%s]", m.GetDestination())
		if !path.IsAbs(dest) {
			return invalid(field, "destination must be an absolute path")
		}
		if removed {
			continue
		}
		if slices.Contains(m.GetOptions(), api.SELinuxRelabel) {
			return unsupported(field+".options", "the \"relabel\" option (SELinux relabelling) is not supported yet")
		}
	}
	if err := checkHooks(adj.GetHooks()); err != nil {
		return err
	}
	for _, l := range adj.GetRlimits() {
		field := fmt.Sprintf("rlimits[%s]", l.GetType())
		if !knownRlimits[l.GetType()] {
			return invalid(field, "unknown resource limit type")
		}
		if l.GetSoft() > l.GetHard() {
			return invalid(field, "soft limit %d above hard limit %d", l.GetSoft(), l.GetHard())
		}
	}
	return checkLinux(adj.GetLinux())
}

func checkHooks(h *api.Hooks) error {
	kinds := []struct {
		name  string
		hooks []*api.Hook
	}{{"prestart", h.GetPrestart()}, {"create_runtime", h.GetCreateRuntime()}, {"create_container", h.GetCreateContainer()},
		{"start_container", h.GetStartContainer()}, {"poststart", h.GetPoststart()}, {"poststop", h.GetPoststop()}}
	for _, k := range kinds {
		for i, hook := range k.hooks {
			if !path.IsAbs(hook.GetPath()) {
				return invalid(fmt.Sprintf("hooks.%s[%d].path", k.name, i), "%q is not an absolute path", hook.GetPath())
			}
			if t := hook.GetTimeout().Get(); t != nil && *t <= 0 {
				return invalid(fmt.Sprintf("hooks.%s[%d].timeout", k.name, i), "must be positive")
			}
		}
	}
	return nil
}

// knownRlimits are the types runc accepts.
var knownRlimits = map[string]bool{
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": true, "RLIMIT_DATA": true, "RLIMIT_FSIZE": true,
	"RLIMIT_LOCKS": true, "RLIMIT_MEMLOCK": true, "RLIMIT_MSGQUEUE": true, "RLIMIT_NICE": true, "RLIMIT_NOFILE": true,
	"RLIMIT_NPROC": true, "RLIMIT_RSS": true, "RLIMIT_RTPRIO": true, "RLIMIT_RTTIME": true, "RLIMIT_SIGPENDING": true,
	"RLIMIT_STACK": true,
}

// adjustMap removes the keys marked for removal from m, then sets the
// others: a key both removed and set (the nri library merges a plugin's
// removal and a later plugin's setting so) ends up set.
func adjustMap[V any](m map[string]V, adj map[string]V) map[string]V {
	for k := range adj {
		if key, removed := api.IsMarkedForRemoval(k); removed {
			delete(m, key)
		}
	}
	for k, v := range adj {
		if _, removed := api.IsMarkedForRemoval(k); removed {
			continue
		}
		if m == nil {
			m = map[string]V{}
		}
		m[k] = v
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// adjustEnv changes variables in place, removes those marked, and appends
// new ones in the order given.
func adjustEnv(p *specs.Process, env []*api.KeyValue) {
	if len(env) == 0 {
		return
	}
	last := map[string]*api.KeyValue{} // by name: the last adjustment wins
	for _, e := range env {
		key, _ := e.IsMarkedForRemoval()
		last[key] = e
	}
	var out []string
	done := map[string]bool{}
	for _, kv := range p.Env {
		name, _, _ := strings.Cut(kv, "=")
		e, ok := last[name]
		switch {
		case !ok:
			out = append(out, kv)
		case done[name]:
		default:
			done[name] = true
			if _, removed := e.IsMarkedForRemoval(); !removed {
				out = append(out, name+"="+e.GetValue())
			}
		}
	}
	for _, e := range env {
		key, removed := e.IsMarkedForRemoval()
		if removed || done[key] || last[key] != e {
			continue
		}
		done[key] = true
		out = append(out, key+"="+e.GetValue())
	}
	p.Env = out
}

func adjustHooks(spec *specs.Spec, h *api.Hooks) {
	if h == nil {
		return
	}
	add := func(dst *[]specs.Hook, src []*api.Hook) {
		for _, hook := range src {
			*dst = append(*dst, hook.ToOCI())
		}
	}
	if len(h.GetPrestart())+len(h.GetCreateRuntime())+len(h.GetCreateContainer())+len(h.GetStartContainer())+
		len(h.GetPoststart())+len(h.GetPoststop()) == 0 {
		return
	}
	if spec.Hooks == nil {
		spec.Hooks = &specs.Hooks{}
	}
	//lint:ignore SA1019 deprecated in the OCI spec, still sent by NRI plugins and run by runc
	add(&spec.Hooks.Prestart, h.GetPrestart())
	add(&spec.Hooks.CreateRuntime, h.GetCreateRuntime())
	add(&spec.Hooks.CreateContainer, h.GetCreateContainer())
	add(&spec.Hooks.StartContainer, h.GetStartContainer())
	add(&spec.Hooks.Poststart, h.GetPoststart())
	add(&spec.Hooks.Poststop, h.GetPoststop())
}

// adjustRlimits sets each limit, replacing one of the same type.
func adjustRlimits(p *specs.Process, rlimits []*api.POSIXRlimit) {
	for _, l := range rlimits {
		r := specs.POSIXRlimit{Type: l.GetType(), Hard: l.GetHard(), Soft: l.GetSoft()}
		if i := slices.IndexFunc(p.Rlimits, func(x specs.POSIXRlimit) bool { return x.Type == r.Type }); i >= 0 {
			p.Rlimits[i] = r
		} else {
			p.Rlimits = append(p.Rlimits, r)
		}
	}
}

// adjustMounts removes the mounts marked and adds (or replaces, by
// destination) the others, then orders the mounts so that a parent is
// mounted before what is below it.
func adjustMounts(spec *specs.Spec, mounts []*api.Mount) {
	if len(mounts) == 0 {
		return
	}
	for _, m := range mounts {
		dest, removed := m.IsMarkedForRemoval()
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(x specs.Mount) bool { return path.Clean(x.Destination) == path.Clean(dest) })
		if removed {
			continue
		}
		var propagation string
		spec.Mounts = append(spec.Mounts, m.ToOCI(&propagation))
		switch {
		case propagation == "rshared":
			spec.Linux.RootfsPropagation = "rshared"
		case propagation == "rslave" && spec.Linux.RootfsPropagation != "rshared":
			spec.Linux.RootfsPropagation = "rslave"
		}
	}
	sort.SliceStable(spec.Mounts, func(i, j int) bool { return mountDepth(spec.Mounts[i]) < mountDepth(spec.Mounts[j]) })
}

func mountDepth(m specs.Mount) int {
	d := path.Clean(m.Destination)
	if d == "/" {
		return 0
	}
	return strings.Count(d, "/")
}
