package container

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/selinux/go-selinux"
	"github.com/opencontainers/selinux/go-selinux/label"
)

// SELinuxLabels makes a process label and a mount label from the policy's
// container contexts and the label options (see spec.SELinuxLabelOptions):
// without a level among them, a new MCS level, reserved until
// ReleaseSELinuxLabel. Both are "" on hosts without SELinux.
func SELinuxLabels(opts []string) (process, mount string, err error) {
	process, mount, err = label.InitLabels(opts)
	if err == nil && process != "" {
		// The policy must know it (a malformed level, an unknown type): here,
		// not when the container starts. (Its level stays reserved: it may
		// be the pod's.)
		err = selinux.SecurityCheckContext(process)
	}
	if err != nil {
		return "", "", fmt.Errorf("SELinux options %q: %v: %w", opts, err, errdefs.ErrInvalidArgument)
	}
	return process, mount, nil
}

// CheckSELinuxOptions refuses label options the policy does not know, as
// SELinuxLabels does, for what runs unlabelled (privileged) all the same: no
// level stays reserved for it but one it names, which may be its pod's.
func CheckSELinuxOptions(opts []string) error {
	if len(opts) == 0 {
		return nil
	}
	process, _, err := SELinuxLabels(opts)
	if err == nil && !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "level:") }) {
		ReleaseSELinuxLabel(process)
	}
	return err
}

// ReleaseSELinuxLabel frees a process label's MCS level for other pods.
func ReleaseSELinuxLabel(process string) {
	if process != "" {
		selinux.ReleaseLabel(process)
	}
}

// ReserveSELinuxLabel keeps a recovered pod's MCS level from being given to
// another pod.
func ReserveSELinuxLabel(process string) {
	if process != "" {
		selinux.ReserveLabel(process)
	}
}

// WithMountLabel adds the SELinux context a mount's files get to its options.
func WithMountLabel(options, mountLabel string) string {
	return label.FormatMountLabel(options, mountLabel)
}

// systemDirs are host dirs never relabelled for a container: relabelling
// them would break the host (and hand the container its files).
var systemDirs = map[string]bool{"/": true, "/bin": true, "/boot": true, "/dev": true, "/etc": true, "/home": true,
	"/lib": true, "/lib64": true, "/proc": true, "/root": true, "/run": true, "/sbin": true, "/sys": true,
	"/tmp": true, "/usr": true, "/var": true, "/var/lib": true, "/var/log": true}

// LabelPrivate gives a dir Berth made for one container (an image volume's)
// the container's mount label, its level included.
func LabelPrivate(path, mountLabel string) error {
	if mountLabel == "" {
		return nil
	}
	if err := label.SetFileLabel(path, mountLabel); err != nil {
		return fmt.Errorf("label %s: %w", path, err)
	}
	return nil
}

// RelabelShared relabels a volume's host path (recursively) with the mount
// label at level s0, so that every container of the pod may use it, as a CRI
// mount's selinux_relabel asks. System dirs are refused.
func RelabelShared(path, mountLabel string) error {
	if mountLabel == "" {
		return nil
	}
	if systemDirs[filepath.Clean(path)] {
		return fmt.Errorf("will not relabel %s for a container: %w", path, errdefs.ErrInvalidArgument)
	}
	if err := label.Relabel(path, mountLabel, true); err != nil {
		return fmt.Errorf("relabel %s: %w", path, err)
	}
	return nil
}
