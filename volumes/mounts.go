package volumes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// MountInfo finds the mount a path lives on (the OS seam, faked in tests).
type MountInfo func(path string) (*mountinfo.Info, error)

// HostMountInfo reads /proc/self/mountinfo.
func HostMountInfo(p string) (*mountinfo.Info, error) {
	if !filepath.IsAbs(p) {
		return nil, fmt.Errorf("mount of %q: not an absolute path: %w", p, errdefs.ErrInvalidArgument)
	}
	mounts, err := mountinfo.GetMounts(nil)
	if err != nil {
		return nil, err
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		if isUnder(p, m.Mountpoint) && (best == nil || len(m.Mountpoint) >= len(best.Mountpoint)) {
			best = m
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no mount holds %s", p)
	}
	return best, nil
}

func isUnder(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// FromCRI converts CRI mounts to OCI bind mounts.
func FromCRI(mounts []*runtime.Mount, info MountInfo) ([]specs.Mount, error) {
	out := make([]specs.Mount, 0, len(mounts))
	for _, m := range mounts {
		om, err := fromCRI(m, info)
		if err != nil {
			return nil, fmt.Errorf("mount %q → %q: %w", m.GetHostPath(), m.GetContainerPath(), err)
		}
		out = append(out, om)
	}
	return out, nil
}

func fromCRI(m *runtime.Mount, info MountInfo) (specs.Mount, error) {
	dst := m.GetContainerPath()
	if !path.IsAbs(dst) {
		return specs.Mount{}, fmt.Errorf("container path must be absolute: %w", errdefs.ErrInvalidArgument)
	}
	if m.GetRecursiveReadOnly() && !m.GetReadonly() {
		return specs.Mount{}, fmt.Errorf("recursive read-only needs readonly: %w", errdefs.ErrInvalidArgument)
	}
	if m.GetRecursiveReadOnly() && m.GetPropagation() != runtime.MountPropagation_PROPAGATION_PRIVATE {
		return specs.Mount{}, fmt.Errorf("recursive read-only needs private propagation: %w", errdefs.ErrInvalidArgument)
	}
	extra, err := bindOptions(m.GetMountOptions())
	if err != nil {
		return specs.Mount{}, err
	}
	src, err := hostPath(m.GetHostPath())
	if err != nil {
		return specs.Mount{}, err
	}
	opts := []string{"rbind"}
	switch m.GetPropagation() {
	case runtime.MountPropagation_PROPAGATION_PRIVATE:
		opts = append(opts, "rprivate")
	case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		if err := needPropagation(src, info, "shared:", "master:"); err != nil {
			return specs.Mount{}, err
		}
		opts = append(opts, "rslave")
	case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
		if err := needPropagation(src, info, "shared:"); err != nil {
			return specs.Mount{}, err
		}
		opts = append(opts, "rshared")
	default:
		return specs.Mount{}, fmt.Errorf("unknown propagation %v: %w", m.GetPropagation(), errdefs.ErrInvalidArgument)
	}
	switch {
	case m.GetRecursiveReadOnly():
		opts = append(opts, "rro")
	case m.GetReadonly():
		opts = append(opts, "ro")
	default:
		opts = append(opts, "rw")
	}
	// SelinuxRelabel: on hosts with SELinux the runtime relabels the host
	// path with the container's mount label; elsewhere there is nothing to do.
	om := specs.Mount{Destination: dst, Type: "bind", Source: src, Options: append(opts, extra...)}
	return om, idmap(&om, m)
}

// bindOptions checks a CRI mount's mount_options (KEP-5855): only the flags
// that take rights away from the container (noexec, nodev, nosuid), which
// the kubelet sends and runc applies by remounting the bind. Anything else
// could undo what the other fields ask (rw under readonly, a propagation) or
// act on the host's mount, so it is refused rather than passed to runc.
// The flags hold on the bind itself; mounts below the host path keep theirs
// (the options are not recursive, as the CRI passes them).
func bindOptions(in []string) ([]string, error) {
	var out []string
	for _, o := range in {
		switch o {
		case "noexec", "nodev", "nosuid":
			if !slices.Contains(out, o) {
				out = append(out, o)
			}
		default:
			return nil, fmt.Errorf("mount_options: %q is not one of noexec, nodev, nosuid: %w", o, errdefs.ErrInvalidArgument)
		}
	}
	return out, nil
}

// idmap makes om an idmapped mount (recursively, as it is an rbind) when the
// CRI mount has ID mappings: the kubelet gives a user-namespaced pod's volumes
// the pod's mappings, so that files the host's root owns are the pod's root's.
func idmap(om *specs.Mount, m *runtime.Mount) error {
	uids, gids := m.GetUidMappings(), m.GetGidMappings()
	if len(uids) == 0 && len(gids) == 0 {
		return nil
	}
	if len(uids) == 0 || len(gids) == 0 {
		return fmt.Errorf("an idmapped mount needs both UID and GID mappings: %w", errdefs.ErrInvalidArgument)
	}
	var err error
	if om.UIDMappings, err = specMappings(uids); err != nil {
		return err
	}
	if om.GIDMappings, err = specMappings(gids); err != nil {
		return err
	}
	om.Options = append(om.Options, "ridmap")
	return nil
}

// UseContainerUserNS drops the ID mappings of the idmapped mounts whose
// mappings are uids and gids, those of the user namespace the container joins
// (the kubelet gives a user-namespaced pod's volumes its pod's): a mount
// without mappings is idmapped through that namespace, where libcontainer
// would otherwise make a user namespace for each mount (a process traced at
// its exec, which an SELinux policy may refuse the runtime).
func UseContainerUserNS(mounts []specs.Mount, uids, gids []specs.LinuxIDMapping) {
	for i, m := range mounts {
		if slices.Equal(m.UIDMappings, uids) && slices.Equal(m.GIDMappings, gids) {
			mounts[i].UIDMappings, mounts[i].GIDMappings = nil, nil
		}
	}
}

func specMappings(in []*runtime.IDMapping) ([]specs.LinuxIDMapping, error) {
	out := make([]specs.LinuxIDMapping, len(in))
	for i, m := range in {
		if m.GetLength() == 0 || uint64(m.GetHostId())+uint64(m.GetLength()) > 1<<32-1 ||
			uint64(m.GetContainerId())+uint64(m.GetLength()) > 1<<32-1 {
			return nil, fmt.Errorf("mount ID mapping %d:%d:%d is empty or runs past the last ID: %w",
				m.GetContainerId(), m.GetHostId(), m.GetLength(), errdefs.ErrInvalidArgument)
		}
		out[i] = specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
	}
	return out, nil
}

// hostPath resolves symlinks in a host path; a missing path becomes a new
// directory (as Docker and containerd do for bind mounts).
func hostPath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("host path must be absolute: %w", errdefs.ErrInvalidArgument)
	}
	resolved, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("create host path: %w", err)
		}
		resolved, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		return "", fmt.Errorf("resolve host path: %w", err)
	}
	return resolved, nil
}

// needPropagation checks that the mount holding src has one of the optional
// fields (shared:N, master:N) that the requested propagation needs.
func needPropagation(src string, info MountInfo, want ...string) error {
	m, err := info(src)
	if err != nil {
		return err
	}
	for _, f := range strings.Fields(m.Optional) {
		for _, w := range want {
			if strings.HasPrefix(f, w) {
				return nil
			}
		}
	}
	return fmt.Errorf("host mount %s of %s has propagation %q, which cannot carry %v: %w",
		m.Mountpoint, src, m.Optional, want, errdefs.ErrFailedPrecondition)
}

// ImageVolumes gives each image VOLUME that no CRI mount covers an empty
// directory under baseDir (the container's own), as an rbind mount.
func ImageVolumes(volumes map[string]struct{}, existing []specs.Mount, baseDir string) ([]specs.Mount, error) {
	dsts := make([]string, 0, len(volumes))
	for v := range volumes {
		dsts = append(dsts, path.Clean("/"+v))
	}
	sort.Strings(dsts)
	var out []specs.Mount
	for _, dst := range slices.Compact(dsts) {
		if slices.ContainsFunc(existing, func(m specs.Mount) bool { return path.Clean(m.Destination) == dst }) {
			continue
		}
		sum := sha256.Sum256([]byte(dst))
		src := filepath.Join(baseDir, hex.EncodeToString(sum[:8]))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, fmt.Errorf("image volume %s: %w", dst, err)
		}
		out = append(out, specs.Mount{Destination: dst, Type: "bind", Source: src, Options: []string{"rbind", "rprivate", "rw"}})
	}
	return out, nil
}
