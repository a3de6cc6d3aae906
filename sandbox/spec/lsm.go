package spec

import (
	"fmt"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultAppArmorProfile is the profile RuntimeDefault (and nothing asked)
// means on hosts with AppArmor; berthd loads it (DefaultAppArmorProfileText)
// when it is not loaded yet.
const DefaultAppArmorProfile = "berth-default"

// LSM is what the host's Linux security modules offer: whether AppArmor and
// SELinux are enabled, and which AppArmor profiles are loaded.
type LSM struct {
	AppArmor         bool
	AppArmorProfiles map[string]bool
	SELinux          bool
}

// applyLSM sets the AppArmor profile the security context asks for, or fails
// with a clear error where the host cannot give it: a security request is
// never dropped silently. Unconfined always works; RuntimeDefault is the
// default profile where AppArmor runs and nothing where it does not; unset is
// the default profile where it is loaded (as with the peers), else nothing.
// SELinux options are refused on hosts without SELinux; on hosts with it the
// labels come in Input (see ContainerSELinuxOptions).
func applyLSM(s *specs.Spec, sc *runtime.LinuxContainerSecurityContext, host LSM) error {
	if err := CheckSELinux(sc.GetSelinuxOptions(), host.SELinux); err != nil {
		return err
	}
	req, err := appArmorRequest(sc)
	if err != nil {
		return err
	}
	profile, err := appArmorProfile(req, host)
	if err != nil {
		return err
	}
	s.Process.ApparmorProfile = profile
	return nil
}

// localhostPrefix starts a Localhost profile's name in the deprecated
// apparmor_profile field, and (as the kubelet writes it) in LocalhostRef.
const localhostPrefix = "localhost/"

// appArmorRequest is the profile a security context asks for: the apparmor
// field, else the deprecated apparmor_profile string ("runtime/default",
// "unconfined", "localhost/<name>"); nil when neither is set.
func appArmorRequest(sc *runtime.LinuxContainerSecurityContext) (*runtime.SecurityProfile, error) {
	if p := sc.GetApparmor(); p != nil {
		return p, nil
	}
	//lint:ignore SA1019 the deprecated field is still part of the CRI: older kubelets and critest send it
	v := sc.GetApparmorProfile()
	switch {
	case v == "":
		return nil, nil
	case v == "runtime/default":
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case v == "unconfined":
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case strings.HasPrefix(v, localhostPrefix):
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: v}, nil
	}
	return nil, fmt.Errorf("AppArmor profile %q: not runtime/default, unconfined or localhost/<name>: %w", v, errdefs.ErrInvalidArgument)
}

func appArmorProfile(p *runtime.SecurityProfile, host LSM) (string, error) {
	switch p.GetProfileType() {
	case runtime.SecurityProfile_Unconfined:
		return "", nil
	case runtime.SecurityProfile_RuntimeDefault:
		switch {
		case !host.AppArmor:
			return "", nil
		case p == nil && !host.AppArmorProfiles[DefaultAppArmorProfile]:
			return "", nil // berthd could not load it: it said so at start
		}
		return loadedProfile(DefaultAppArmorProfile, host)
	case runtime.SecurityProfile_Localhost:
		if !host.AppArmor {
			return "", fmt.Errorf("AppArmor profile %q: AppArmor is not enabled on this host: %w", p.GetLocalhostRef(), errdefs.ErrInvalidArgument)
		}
		return loadedProfile(strings.TrimPrefix(p.GetLocalhostRef(), localhostPrefix), host)
	}
	return "", fmt.Errorf("AppArmor profile type %v: %w", p.GetProfileType(), errdefs.ErrInvalidArgument)
}

func loadedProfile(name string, host LSM) (string, error) {
	if name == "" || !host.AppArmorProfiles[name] {
		return "", fmt.Errorf("AppArmor profile %q is not loaded on this host: %w", name, errdefs.ErrFailedPrecondition)
	}
	return name, nil
}

// CheckSELinux refuses SELinux options on a host without SELinux: they would
// be dropped silently.
func CheckSELinux(o *runtime.SELinuxOption, enabled bool) error {
	if enabled || len(SELinuxLabelOptions(o)) == 0 {
		return nil
	}
	return fmt.Errorf("SELinux options %v: SELinux is not enabled on this host: %w", o, errdefs.ErrInvalidArgument)
}
