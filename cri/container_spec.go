package cri

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/spec"
	"github.com/berth-cri/berth/volumes"
)

// buildSpec builds the container's OCI spec from its CRI config, its image
// and its pod, once the container domain has mounted its rootfs (the user is
// looked up in it) and image mounts (b).
func (s *Server) buildSpec(ctx context.Context, id string, pod *sandbox.Pod, img *images.Image, cfg *runtime.ContainerConfig,
	b container.BuildInput, labels selinuxLabels) (*specs.Spec, error) {
	cfg, err := withImageMounts(cfg, b.ImageMounts)
	if err != nil {
		return nil, err
	}
	in, err := s.specInput(id, pod, img, cfg, b, labels)
	if err != nil {
		return nil, err
	}
	built, err := spec.Build(in)
	if err != nil {
		return nil, err
	}
	for _, w := range built.Warnings {
		log.G(ctx).Warn(w)
	}
	return built.Spec, nil
}

// sharedPIDNamespace says whether the container joins its pod's shared PID
// namespace (whose PID 1 is the pod's pause), and refuses the modes Berth
// does not give.
func sharedPIDNamespace(pod *sandbox.Pod, cfg *runtime.ContainerConfig) (bool, error) {
	switch mode := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid(); mode {
	case runtime.NamespaceMode_CONTAINER:
		return false, nil
	case runtime.NamespaceMode_NODE:
		if pod.Spec.UserNS != nil {
			return false, fmt.Errorf("a container of a pod with its own user namespace cannot use the host's PID namespace: %w", errdefs.ErrInvalidArgument)
		}
		return false, nil
	case runtime.NamespaceMode_POD:
		return true, nil
	default:
		return false, fmt.Errorf("PID namespace mode %v is not supported yet: %w", mode, errdefs.ErrInvalidArgument)
	}
}

// namespacePaths maps each namespace the container joins to its path: the
// pod's pins, the pod's shared PID namespace (pidNS), or "" for the host's.
func namespacePaths(pod *sandbox.Pod, cfg *runtime.ContainerConfig, pidNS string) map[specs.LinuxNamespaceType]string {
	ns := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: pod.Pins[sandbox.NetNS],
		specs.IPCNamespace:     pod.Pins[sandbox.IPCNS],
		specs.UTSNamespace:     pod.Pins[sandbox.UTSNS],
		specs.UserNamespace:    pod.Pins[sandbox.UserNS],
	}
	switch cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() {
	case runtime.NamespaceMode_NODE:
		ns[specs.PIDNamespace] = ""
	case runtime.NamespaceMode_POD:
		ns[specs.PIDNamespace] = pidNS
	}
	return ns
}

// specInput is what sandbox/spec builds the container's spec from.
func (s *Server) specInput(id string, pod *sandbox.Pod, img *images.Image, cfg *runtime.ContainerConfig,
	b container.BuildInput, labels selinuxLabels) (spec.Input, error) {
	passwd, group, err := container.UserFiles(b.Rootfs)
	if err != nil {
		return spec.Input{}, err
	}
	sc := cfg.GetLinux().GetSecurityContext()
	user, err := spec.ResolveUser(userSpec(sc, img), passwd, group)
	if err != nil {
		return spec.Input{}, err
	}
	mounts, err := s.containerMounts(pod, img, cfg, b, labels)
	if err != nil {
		return spec.Input{}, err
	}
	handler, err := s.runtimeHandler(pod.Spec.RuntimeHandler)
	if err != nil {
		return spec.Input{}, fmt.Errorf("pod %s runs on runtime handler %q, which berth.toml no longer configures: %w",
			pod.ID, pod.Spec.RuntimeHandler, errdefs.ErrFailedPrecondition)
	}
	host, err := s.hostLimits(sc.GetPrivileged() && !handler.PrivilegedWithoutHostDevices)
	if err != nil {
		return spec.Input{}, err
	}
	host.PrivilegedWithoutHostDevices = handler.PrivilegedWithoutHostDevices
	profile, err := seccompProfile(sc)
	if err != nil {
		return spec.Input{}, err
	}
	return spec.Input{
		Config: cfg, User: user, Hostname: pod.Spec.Hostname, Rootfs: b.Rootfs, Namespaces: namespacePaths(pod, cfg, b.PIDNamespace),
		Image:  spec.ImageConfig{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env, WorkingDir: img.Config.WorkingDir},
		Mounts: mounts,
		Pod: spec.PodFiles{Hostname: pod.HostnamePath(), Hosts: pod.HostsPath(), ResolvConf: pod.ResolvConfPath(),
			Shm: pod.ShmPath},
		CgroupsPath:         container.CgroupPath(cgroupParent(pod), id),
		MinOOMScoreAdj:      container.OwnOOMScoreAdj(),
		Host:                host,
		ResolveDevice:       container.DeviceNodes,
		Seccomp:             profile,
		LSM:                 s.hostLSM(),
		SELinuxProcessLabel: labels.process, SELinuxMountLabel: labels.mount,
	}, nil
}

// userSpec is who the container asks to run as, and the image's user.
func userSpec(sc *runtime.LinuxContainerSecurityContext, img *images.Image) spec.UserSpec {
	us := spec.UserSpec{RunAsUsername: sc.GetRunAsUsername(), ImageUser: img.Config.User,
		SupplementalGroups: sc.GetSupplementalGroups(),
		StrictGroups:       sc.GetSupplementalGroupsPolicy() == runtime.SupplementalGroupsPolicy_Strict}
	if sc.GetRunAsUser() != nil {
		v := sc.GetRunAsUser().GetValue()
		us.RunAsUser = &v
	}
	if sc.GetRunAsGroup() != nil {
		v := sc.GetRunAsGroup().GetValue()
		us.RunAsGroup = &v
	}
	return us
}

// containerMounts are the container's OCI mounts: its CRI mounts (relabelled
// where they ask; idmapped in a pod with its own user namespace) and the
// image's VOLUMEs, dirs under the container's state dir.
func (s *Server) containerMounts(pod *sandbox.Pod, img *images.Image, cfg *runtime.ContainerConfig,
	b container.BuildInput, labels selinuxLabels) ([]specs.Mount, error) {
	mounts, err := volumes.FromCRI(cfg.GetMounts(), volumes.HostMountInfo)
	if err != nil {
		return nil, err
	}
	if err := relabelVolumes(cfg.GetMounts(), mounts, labels.mount); err != nil {
		return nil, err
	}
	if u := pod.Spec.UserNS; u != nil {
		volumes.UseContainerUserNS(mounts, linuxIDMappings(u.UIDs), linuxIDMappings(u.GIDs))
	}
	imgVolumes, err := volumes.ImageVolumes(img.Config.Volumes, mounts, filepath.Join(b.Dir, "volumes"))
	if err != nil {
		return nil, err
	}
	if err := openImageVolumes(imgVolumes, pod.Spec.UserNS != nil, labels.mount); err != nil {
		return nil, err
	}
	return append(mounts, imgVolumes...), nil
}

// openImageVolumes lets the container write to its image volumes, dirs that
// berthd made for it, as the peers do: on an SELinux host they carry the
// container's mount label, and in a pod with a user namespace of its own they
// are idmapped through it (the host's root, their owner, is the pod's root).
func openImageVolumes(mounts []specs.Mount, userns bool, mountLabel string) error {
	for i := range mounts {
		if err := container.LabelPrivate(mounts[i].Source, mountLabel); err != nil {
			return err
		}
		if userns {
			mounts[i].Options = append(mounts[i].Options, "ridmap")
		}
	}
	return nil
}

// linuxIDMappings are a pod's user namespace mappings in OCI form.
func linuxIDMappings(maps []sandbox.IDMap) []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, len(maps))
	for i, m := range maps {
		out[i] = specs.LinuxIDMapping{ContainerID: m.ContainerID, HostID: m.HostID, Size: m.Size}
	}
	return out
}

// hostLSM is what the host's AppArmor and SELinux offer: whether they run
// (see hostLSMs) and the AppArmor profiles loaded now (they may be loaded at
// any time).
func (s *Server) hostLSM() spec.LSM {
	l := s.hostLSMs()
	if l.AppArmor {
		l.AppArmorProfiles = container.AppArmorProfiles()
	}
	return l
}

// hostLSMs says whether AppArmor and SELinux run, read once, when Berth's
// default AppArmor profile is loaded if it is not yet.
func (s *Server) hostLSMs() spec.LSM {
	s.lsmOnce.Do(func() {
		s.lsm = spec.LSM{AppArmor: container.AppArmorEnabled(), SELinux: container.SELinuxEnabled()}
		if s.lsm.AppArmor && !container.AppArmorProfiles()[spec.DefaultAppArmorProfile] {
			if err := container.LoadAppArmorProfile(spec.DefaultAppArmorProfileText); err != nil {
				log.L.WithError(err).Warn("the default AppArmor profile is not loaded: containers that ask for it fail, the others run unconfined")
			}
		}
	})
	return s.lsm
}

// seccompProfile resolves the container's seccomp profile, reading a
// Localhost one from the host (a privileged container runs without).
func seccompProfile(sc *runtime.LinuxContainerSecurityContext) (spec.Seccomp, error) {
	kind, path, err := spec.SeccompChoice(sc)
	if err != nil || kind != spec.SeccompLocalhost || sc.GetPrivileged() {
		return spec.Seccomp{Kind: kind}, err
	}
	data, err := container.ReadProfile(path)
	return spec.Seccomp{Kind: kind, Profile: data}, err
}

// hostLimits is what a container may get from the host: berthd's own
// capabilities (read once) and, when privileged, the host's devices.
func (s *Server) hostLimits(privileged bool) (spec.Host, error) {
	s.hostCapsOnce.Do(func() { s.hostCaps, s.hostCapsErr = container.HostCapabilities() })
	if s.hostCapsErr != nil {
		return spec.Host{}, s.hostCapsErr
	}
	host := spec.Host{Capabilities: s.hostCaps, NoHugetlb: !s.hugetlb()}
	if privileged {
		devices, err := container.HostDevices()
		if err != nil {
			return spec.Host{}, err
		}
		host.Devices = devices
	}
	return host, nil
}

// hugetlb says (once) whether the host's cgroups limit huge pages.
func (s *Server) hugetlb() bool {
	s.hugetlbOnce.Do(func() { s.hugetlbOK = cgroups.HugetlbSupported() })
	return s.hugetlbOK
}

// resources are a CRI resource update's cgroup settings as this host can
// apply them (no hugepage limits without a hugetlb controller).
func (s *Server) resources(r *runtime.LinuxContainerResources) *specs.LinuxResources {
	return spec.Resources(r, spec.Host{NoHugetlb: !s.hugetlb()})
}

// cgroupParent is the pod's cgroup (the kubelet's cgroup_parent), or Berth's
// own parent when the pod names none.
func cgroupParent(pod *sandbox.Pod) string {
	if pod.Spec.CgroupParent == "" {
		return "/berth/" + pod.ID
	}
	return trimSlash(pod.Spec.CgroupParent)
}
