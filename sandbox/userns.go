package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// UserNS is the kind of a pod's user namespace pin.
const UserNS = "user"

// IDMap maps Size IDs from ContainerID in the pod's user namespace to HostID
// on the host.
type IDMap struct {
	ContainerID uint32 `json:"container_id"`
	HostID      uint32 `json:"host_id"`
	Size        uint32 `json:"size"`
}

// UserNamespace is a pod's own user namespace: one UID and one GID range,
// each mapping the pod's root (ID 0) to an unprivileged host ID.
type UserNamespace struct {
	UIDs []IDMap `json:"uids"`
	GIDs []IDMap `json:"gids"`
}

// Root is the host UID and GID the pod's root is (valid after Validate).
func (u *UserNamespace) Root() (uid, gid uint32) { return u.UIDs[0].HostID, u.GIDs[0].HostID }

// Validate checks that the mappings are what Berth can give a pod: exactly
// one range each, mapping the container's ID 0 (its root must exist), not
// reaching the host's ID 0 (that would make the pod's root the host's), and
// not running past the last ID. A pod with its own user namespace must have
// its own network, IPC and PID namespaces too: the host's are owned by the
// host's user namespace, where the pod's root is nobody.
func (u *UserNamespace) Validate(spec Spec) error {
	for kind, maps := range map[string][]IDMap{"uid": u.UIDs, "gid": u.GIDs} {
		if len(maps) != 1 {
			return fmt.Errorf("user namespace needs exactly one %s mapping, got %d: %w", kind, len(maps), errdefs.ErrInvalidArgument)
		}
		m := maps[0]
		switch {
		case m.ContainerID != 0:
			return fmt.Errorf("%s mapping must start at container ID 0 (the pod's root), not %d: %w", kind, m.ContainerID, errdefs.ErrInvalidArgument)
		case m.Size == 0:
			return fmt.Errorf("%s mapping of size 0: %w", kind, errdefs.ErrInvalidArgument)
		case m.HostID == 0:
			return fmt.Errorf("%s mapping would make the pod's root the host's root: %w", kind, errdefs.ErrInvalidArgument)
		case uint64(m.HostID)+uint64(m.Size) > 1<<32-1:
			return fmt.Errorf("%s mapping %d+%d runs past the last host ID: %w", kind, m.HostID, m.Size, errdefs.ErrInvalidArgument)
		}
	}
	for name, mode := range map[string]string{"network": spec.NetworkMode, "IPC": spec.IPCMode, "PID": spec.PIDMode} {
		if mode == ModeNode {
			return fmt.Errorf("a pod with its own user namespace cannot use the host's %s namespace: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// startHolder starts a process in a new user namespace with u's mappings,
// where it becomes root and unshares new namespaces of the given clone flags,
// so that they are owned by that namespace and made by its root (the IPC
// namespace's mqueue filesystem belongs to whoever made the namespace: made
// by the host's root, the pod's root could not even label it). The process
// (holder: "berth-runtime hold FLAGS", package holder) says when it is done and
// lives until the returned function is called. nsDir is the /proc dir of the
// namespaces of its thread that made them.
func startHolder(holder string, flags uintptr, u *UserNamespace) (nsDir string, release func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", nil, err
	}
	defer r.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		w.Close()
		return "", nil, err
	}
	defer ready.Close()
	cmd := exec.Command(holder, "hold", strconv.FormatUint(uint64(flags), 10))
	cmd.ExtraFiles = []*os.File{r, readyW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: sysProcMaps(u.UIDs), GidMappings: sysProcMaps(u.GIDs),
		// The pod's processes set their supplementary groups.
		GidMappingsEnableSetgroups: true,
		// It runs as the host's root, nobody in the namespace, which would
		// lose every capability at exec: these it keeps, to become root.
		AmbientCaps: []uintptr{unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SYS_ADMIN},
		Setpgid:     true,
	}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		w.Close()
		return "", nil, fmt.Errorf("start user namespace holder %s: %w", holder, err)
	}
	release = func() {
		w.Close()
		_ = cmd.Wait()
	}
	said, err := io.ReadAll(io.LimitReader(ready, 512))
	var tid int
	if _, scanErr := fmt.Sscanf(string(said), "ok %d", &tid); err != nil || scanErr != nil {
		release()
		return "", nil, fmt.Errorf("user namespace holder: %q, %v", said, err)
	}
	return fmt.Sprintf("/proc/%d/task/%d/ns", cmd.Process.Pid, tid), release, nil
}

func sysProcMaps(maps []IDMap) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(maps))
	for i, m := range maps {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// probeMapping is the user namespace ProbeUserNamespace makes: any unprivileged
// range does.
var probeMapping = &UserNamespace{UIDs: []IDMap{{0, 1 << 30, 65536}}, GIDs: []IDMap{{0, 1 << 30, 65536}}}

// ProbeUserNamespace makes a user namespace and calls fn with its path (to
// check what the host can do with one, e.g. idmapped mounts); the namespace
// is gone when it returns.
func (h HostOS) ProbeUserNamespace(fn func(userns string) error) error {
	nsDir, release, err := startHolder(h.Holder, 0, probeMapping)
	if err != nil {
		return err
	}
	defer release()
	return fn(nsDir + "/user")
}
