package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/cgroups"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
	"github.com/berth-cri/berth/sandbox/spec"
	"github.com/berth-cri/berth/volumes"
)

// createInShim builds the container's spec and has the pod's shim create its
// init. It returns the container's log path and user.
func (s *Server) createInShim(ctx context.Context, id string, pod *sandbox.Pod, img *images.Image, cfg *runtime.ContainerConfig,
	rootfs string, labels selinuxLabels) (_ string, _ *container.User, retErr error) {
	shim, err := s.shims.Get(ctx, pod.ID)
	if err != nil {
		return "", nil, err
	}
	nsPaths, err := s.namespacePaths(ctx, pod, cfg)
	if err != nil {
		return "", nil, err
	}
	built, err := s.buildSpec(id, pod, img, cfg, rootfs, nsPaths, labels)
	if err != nil {
		return "", nil, err
	}
	for _, w := range built.Warnings {
		log.G(ctx).Warn(w)
	}
	logPath, err := containerLogPath(s.containerDir(id), pod.Spec.LogDirectory, cfg.GetLogPath())
	if err != nil {
		return "", nil, err
	}
	if err := container.PrepareLogPath(logPath); err != nil {
		return "", nil, err
	}
	s.watchShim(pod.ID)
	// From here the shim may hold the container whatever Create answers.
	defer func() {
		if retErr != nil {
			s.deleteInShim(ctx, pod.ID, id)
		}
	}()
	if err := shim.Create(ctx, id, built.Spec, runner.IO{LogPath: logPath, Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce()}); err != nil {
		return "", nil, err
	}
	return logPath, processUser(built.Spec.Process.User), nil
}

// processUser is the user a spec's process runs as, its primary group among
// its groups, as ContainerStatus reports it.
func processUser(u specs.User) *container.User {
	groups := append([]uint32{u.GID}, u.AdditionalGids...)
	slices.Sort(groups)
	return &container.User{UID: u.UID, GID: u.GID, Groups: slices.Compact(groups)}
}

// containerLogPath is the pod's log directory joined with the container's
// log path, which must stay inside it; without either, the log goes into the
// container's state dir.
func containerLogPath(ctrDir, podLogDir, logPath string) (string, error) {
	if podLogDir == "" || logPath == "" {
		return filepath.Join(ctrDir, "container.log"), nil
	}
	p := filepath.Join(podLogDir, logPath)
	if !strings.HasPrefix(p, filepath.Clean(podLogDir)+"/") {
		return "", fmt.Errorf("log path %q leaves the pod's log directory: %w", logPath, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// namespacePaths maps each namespace the container joins to its path: the
// pod's pins, the pause's PID namespace, or "" for the host's.
func (s *Server) namespacePaths(ctx context.Context, pod *sandbox.Pod, cfg *runtime.ContainerConfig) (map[specs.LinuxNamespaceType]string, error) {
	ns := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: pod.Pins[sandbox.NetNS],
		specs.IPCNamespace:     pod.Pins[sandbox.IPCNS],
		specs.UTSNamespace:     pod.Pins[sandbox.UTSNS],
		specs.UserNamespace:    pod.Pins[sandbox.UserNS],
	}
	opts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch opts.GetPid() {
	case runtime.NamespaceMode_CONTAINER:
	case runtime.NamespaceMode_NODE:
		if pod.Spec.UserNS != nil {
			return nil, fmt.Errorf("a container of a pod with its own user namespace cannot use the host's PID namespace: %w", errdefs.ErrInvalidArgument)
		}
		ns[specs.PIDNamespace] = ""
	case runtime.NamespaceMode_POD:
		shim, err := s.shims.Get(ctx, pod.ID)
		if err != nil {
			return nil, err
		}
		pid, err := shim.Pause(ctx, runner.PauseArgs{UserNS: pod.Pins[sandbox.UserNS],
			ProcessLabel: pod.Spec.SELinuxProcessLabel, MountLabel: pod.Spec.SELinuxMountLabel})
		if err != nil {
			return nil, err
		}
		ns[specs.PIDNamespace] = fmt.Sprintf("/proc/%d/ns/pid", pid)
	default:
		return nil, fmt.Errorf("PID namespace mode %v is not supported yet: %w", opts.GetPid(), errdefs.ErrInvalidArgument)
	}
	return ns, nil
}

func (s *Server) buildSpec(id string, pod *sandbox.Pod, img *images.Image, cfg *runtime.ContainerConfig, rootfs string,
	ns map[specs.LinuxNamespaceType]string, labels selinuxLabels) (*spec.Built, error) {
	passwd, group, err := container.UserFiles(rootfs)
	if err != nil {
		return nil, err
	}
	sc := cfg.GetLinux().GetSecurityContext()
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
	user, err := spec.ResolveUser(us, passwd, group)
	if err != nil {
		return nil, err
	}
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
	imgVolumes, err := volumes.ImageVolumes(img.Config.Volumes, mounts, filepath.Join(s.containerDir(id), "volumes"))
	if err != nil {
		return nil, err
	}
	if err := openImageVolumes(imgVolumes, pod.Spec.UserNS != nil, labels.mount); err != nil {
		return nil, err
	}
	handler, err := s.runtimeHandler(pod.Spec.RuntimeHandler)
	if err != nil {
		return nil, fmt.Errorf("pod %s runs on runtime handler %q, which berth.toml no longer configures: %w",
			pod.ID, pod.Spec.RuntimeHandler, errdefs.ErrFailedPrecondition)
	}
	host, err := s.hostLimits(sc.GetPrivileged() && !handler.PrivilegedWithoutHostDevices)
	if err != nil {
		return nil, err
	}
	host.PrivilegedWithoutHostDevices = handler.PrivilegedWithoutHostDevices
	profile, err := seccompProfile(sc)
	if err != nil {
		return nil, err
	}
	return spec.Build(spec.Input{
		Config: cfg, User: user, Hostname: pod.Spec.Hostname, Rootfs: rootfs, Namespaces: ns,
		Image:  spec.ImageConfig{Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd, Env: img.Config.Env, WorkingDir: img.Config.WorkingDir},
		Mounts: append(mounts, imgVolumes...),
		Pod: spec.PodFiles{Hostname: pod.HostnamePath(), Hosts: pod.HostsPath(), ResolvConf: pod.ResolvConfPath(),
			Shm: pod.ShmPath},
		CgroupsPath:         cgroupParent(pod) + "/" + id,
		MinOOMScoreAdj:      container.OwnOOMScoreAdj(),
		Host:                host,
		ResolveDevice:       container.DeviceNodes,
		Seccomp:             profile,
		LSM:                 s.hostLSM(),
		SELinuxProcessLabel: labels.process, SELinuxMountLabel: labels.mount,
	})
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
