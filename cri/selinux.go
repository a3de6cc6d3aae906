package cri

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/spec"
)

// podSELinux gives a pod its SELinux labels on a host with SELinux, with a
// new MCS level unless its options name one (reserved until the pod is
// removed). A privileged pod has them too, as with the peers: its files and
// its pause carry them, its unprivileged containers share its level, its
// privileged ones run unlabelled. Options on a host without SELinux, or that
// the policy does not know, are InvalidArgument.
func (s *Server) podSELinux(cfg *runtime.PodSandboxConfig, ps *sandbox.Spec) error {
	sc := cfg.GetLinux().GetSecurityContext()
	host := s.hostLSMs() // the flags only: no need to list AppArmor profiles
	if err := spec.CheckSELinux(sc.GetSelinuxOptions(), host.SELinux); err != nil {
		return err
	}
	if !host.SELinux {
		return nil
	}
	var err error
	ps.SELinuxProcessLabel, ps.SELinuxMountLabel, err = container.SELinuxLabels(spec.SELinuxLabelOptions(sc.GetSelinuxOptions()))
	return err
}

// selinuxLabels are a container's SELinux labels ("" without SELinux).
type selinuxLabels struct{ process, mount string }

// containerSELinux is a container's SELinux labels: none on a host without
// SELinux or for a privileged container (whose options must still be known
// to the policy); the pod's when it asks for nothing; else its options, at
// the pod's level unless it names one.
func (s *Server) containerSELinux(pod *sandbox.Pod, sc *runtime.LinuxContainerSecurityContext) (selinuxLabels, error) {
	host := s.hostLSMs() // the flags only: no need to list AppArmor profiles
	if err := spec.CheckSELinux(sc.GetSelinuxOptions(), host.SELinux); err != nil {
		return selinuxLabels{}, err
	}
	if !host.SELinux {
		return selinuxLabels{}, nil
	}
	if sc.GetPrivileged() {
		return selinuxLabels{}, container.CheckSELinuxOptions(spec.SELinuxLabelOptions(sc.GetSelinuxOptions()))
	}
	opts := spec.ContainerSELinuxOptions(pod.Spec.SELinuxProcessLabel, sc.GetSelinuxOptions())
	if len(opts) == 0 && pod.Spec.SELinuxProcessLabel != "" {
		return selinuxLabels{pod.Spec.SELinuxProcessLabel, pod.Spec.SELinuxMountLabel}, nil
	}
	process, mount, err := container.SELinuxLabels(opts)
	return selinuxLabels{process, mount}, err
}

// relabelVolumes relabels the host paths of the CRI mounts that ask for it
// (selinux_relabel) with the container's mount label, shared by the pod.
func relabelVolumes(cri []*runtime.Mount, mounts []specs.Mount, mountLabel string) error {
	for i, m := range cri {
		if m.GetSelinuxRelabel() {
			if err := container.RelabelShared(mounts[i].Source, mountLabel); err != nil {
				return err
			}
		}
	}
	return nil
}
