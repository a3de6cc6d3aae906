package spec

import (
	"fmt"
	"path"
	"slices"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageConfig is what the spec takes from the image config.
type ImageConfig struct {
	Entrypoint, Cmd, Env []string
	WorkingDir           string
}

// PodFiles are the pod's files and mounts a container shares.
type PodFiles struct {
	Hostname, Hosts, ResolvConf string // host paths bind-mounted into /etc
	Shm                         string // the pod's /dev/shm tmpfs; "" gives the container its own
}

// Input is everything a container's spec is built from.
type Input struct {
	Config   *runtime.ContainerConfig
	Image    ImageConfig
	User     User
	Hostname string
	Rootfs   string
	// Namespaces maps each namespace to join to its path; a kind that is
	// absent is new for the container, a kind mapped to "" is the host's
	// (not listed in the spec).
	Namespaces  map[specs.LinuxNamespaceType]string
	Mounts      []specs.Mount // CRI mounts and image volumes, already converted
	Pod         PodFiles
	CgroupsPath string
	// MinOOMScoreAdj is the lowest oom_score_adj the runtime may set (without
	// CAP_SYS_RESOURCE, its own); lower requests are clamped to it.
	MinOOMScoreAdj int
	// Host bounds the capabilities and devices a container may get.
	Host Host
	// ResolveDevice finds the host device nodes of the config's devices.
	ResolveDevice ResolveDevice
	// Seccomp is the profile the security context asks for (see
	// SeccompChoice); privileged containers run without one.
	Seccomp Seccomp
	// LSM is what the host's AppArmor and SELinux offer.
	LSM LSM
	// SELinuxProcessLabel and SELinuxMountLabel are the container's labels
	// on a host with SELinux ("" elsewhere, and for privileged containers).
	SELinuxProcessLabel, SELinuxMountLabel string
}

// Built is the spec with the warnings building it produced.
type Built struct {
	Spec     *specs.Spec
	Warnings []string
}

// Build makes the OCI spec of a container with Berth's secure defaults:
// Docker's default capabilities, masked and read-only /proc and /sys paths,
// no devices but those asked for, the pod's namespaces and files.
func Build(in Input) (*Built, error) {
	cfg := in.Config
	if err := refuseUnsupported(cfg); err != nil {
		return nil, err
	}
	process, err := buildProcess(in)
	if err != nil {
		return nil, err
	}
	b := &Built{}
	s := &specs.Spec{
		Version:     specs.Version,
		Process:     process,
		Root:        &specs.Root{Path: in.Rootfs, Readonly: cfg.GetLinux().GetSecurityContext().GetReadonlyRootfs()},
		Mounts:      append(defaultMounts(in.Pod), in.Mounts...),
		Annotations: cfg.GetAnnotations(),
		Linux: &specs.Linux{
			CgroupsPath:   in.CgroupsPath,
			Namespaces:    namespaces(in.Namespaces),
			MaskedPaths:   defaultMaskedPaths(),
			ReadonlyPaths: defaultReadonlyPaths(),
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		},
	}
	s.Linux.RootfsPropagation = rootfsPropagation(in.Mounts)
	sc := cfg.GetLinux().GetSecurityContext()
	if sc.GetPrivileged() {
		applyPrivileged(s, in.Host)
	} else {
		applyPaths(s, sc)
		if s.Linux.Seccomp, err = seccomp(in.Seccomp, process.Capabilities.Bounding); err != nil {
			return nil, err
		}
		if err := applyLSM(s, sc, in.LSM); err != nil {
			return nil, err
		}
		s.Process.SelinuxLabel, s.Linux.MountLabel = in.SELinuxProcessLabel, in.SELinuxMountLabel
	}
	allDevices := sc.GetPrivileged() && !in.Host.PrivilegedWithoutHostDevices
	if err := applyDevices(s, cfg.GetDevices(), in.ResolveDevice, allDevices); err != nil {
		return nil, err
	}
	if _, joinsUTS := in.Namespaces[specs.UTSNamespace]; !joinsUTS {
		s.Hostname = in.Hostname // a joined UTS namespace keeps the pod's
	}
	b.Warnings = applyResources(s, cfg.GetLinux().GetResources(), in.MinOOMScoreAdj, in.Host)
	b.Spec = s
	return b, nil
}

// rootfsPropagation is "rshared" when a mount propagates back to the host
// (the container's mounts must reach it through a shared root), else ""
// (libcontainer's rslave: host mounts still reach rslave mounts).
func rootfsPropagation(mounts []specs.Mount) string {
	for _, m := range mounts {
		if slices.Contains(m.Options, "rshared") {
			return "rshared"
		}
	}
	return ""
}

func buildProcess(in Input) (*specs.Process, error) {
	cfg := in.Config
	args, err := ProcessArgs(cfg.GetCommand(), cfg.GetArgs(), in.Image.Entrypoint, in.Image.Cmd)
	if err != nil {
		return nil, err
	}
	var envs []KeyValue
	if in.Hostname != "" {
		envs = append(envs, KeyValue{"HOSTNAME", in.Hostname})
	}
	criEnvs, err := envsFromCRI(cfg.GetEnvs())
	if err != nil {
		return nil, err
	}
	envs = append(envs, criEnvs...)
	cwd := cfg.GetWorkingDir()
	if cwd == "" {
		cwd = in.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("working dir %q is not absolute: %w", cwd, errdefs.ErrInvalidArgument)
	}
	caps, ambient, err := capabilities(cfg.GetLinux().GetSecurityContext(), in.Host.Capabilities)
	if err != nil {
		return nil, err
	}
	return &specs.Process{
		Terminal: cfg.GetTty(),
		Args:     args,
		Env:      MergeEnv(in.Image.Env, envs),
		Cwd:      cwd,
		User:     specs.User{UID: in.User.UID, GID: in.User.GID, AdditionalGids: in.User.AdditionalGids},
		Capabilities: &specs.LinuxCapabilities{
			Bounding: caps, Effective: caps, Permitted: caps, Inheritable: ambient, Ambient: ambient,
		},
		NoNewPrivileges: cfg.GetLinux().GetSecurityContext().GetNoNewPrivs(),
	}, nil
}

// namespaces lists the container's namespaces: joined ones with their path,
// new ones without, host ones not at all. The user namespace is the pod's
// when it has one of its own (joined first, so the others are made in it),
// else the host's: never a new one.
func namespaces(join map[specs.LinuxNamespaceType]string) []specs.LinuxNamespace {
	var out []specs.LinuxNamespace
	if p := join[specs.UserNamespace]; p != "" {
		out = append(out, specs.LinuxNamespace{Type: specs.UserNamespace, Path: p})
	}
	for _, kind := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace} {
		p, listed := join[kind]
		switch {
		case !listed:
			out = append(out, specs.LinuxNamespace{Type: kind})
		case p != "":
			out = append(out, specs.LinuxNamespace{Type: kind, Path: p})
		}
	}
	return out
}

func applyResources(s *specs.Spec, r *runtime.LinuxContainerResources, minOOM int, host Host) []string {
	var warnings []string
	if r == nil {
		return nil
	}
	res := Resources(r, host)
	res.Devices = s.Linux.Resources.Devices
	s.Linux.Resources = res
	oom := int(r.GetOomScoreAdj())
	if oom < minOOM {
		warnings = append(warnings, fmt.Sprintf("oom_score_adj %d clamped to %d: the runtime may not set lower values on this host", oom, minOOM))
		oom = minOOM
	}
	if oom != 0 {
		s.Process.OOMScoreAdj = &oom
	}
	return warnings
}

// Resources are the cgroup settings of r (all but oom_score_adj, which is
// the process's) that host can apply: hugepage limits only where its
// cgroups have the hugetlb controller.
func Resources(r *runtime.LinuxContainerResources, host Host) *specs.LinuxResources {
	res := &specs.LinuxResources{}
	cpu := &specs.LinuxCPU{Cpus: r.GetCpusetCpus(), Mems: r.GetCpusetMems()}
	if v := uint64(r.GetCpuShares()); v > 0 {
		cpu.Shares = &v
	}
	if v := r.GetCpuQuota(); v > 0 {
		cpu.Quota = &v
	}
	if v := uint64(r.GetCpuPeriod()); v > 0 {
		cpu.Period = &v
	}
	res.CPU = cpu
	if v := r.GetMemoryLimitInBytes(); v > 0 {
		res.Memory = &specs.LinuxMemory{Limit: &v}
		if sw := r.GetMemorySwapLimitInBytes(); sw > 0 {
			res.Memory.Swap = &sw
		}
	}
	for _, h := range r.GetHugepageLimits() {
		if !host.NoHugetlb {
			res.HugepageLimits = append(res.HugepageLimits, specs.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if len(r.GetUnified()) > 0 {
		res.Unified = r.GetUnified()
	}
	return res
}
