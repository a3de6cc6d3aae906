package container

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-cri/berth/sandbox/runner"
)

// CreateInput is what Create makes a container from.
type CreateInput struct {
	Pod Pod
	// Record is the container's record as it is to be written: ID, PodID,
	// name, image, labels... Create fills in LogPath and User.
	Record Container
	// MountLabel is the SELinux label the rootfs's and the image mounts'
	// files get ("" without SELinux).
	MountLabel string
	// ImageMounts are the images mounted read-only into the container.
	ImageMounts []ImageMount
	// LogPath is the container's log file, relative to the pod's log dir;
	// without either, the log goes into the container's state dir.
	LogPath string
	// SharedPID: the container joins the pod's shared PID namespace, whose
	// PID 1 is the pod's pause process.
	SharedPID bool
	// Stdin and StdinOnce wire the init's stdin (runner.IO).
	Stdin, StdinOnce bool
	// Build makes the container's OCI spec once its rootfs and image mounts
	// are mounted (the user is looked up in the rootfs's /etc/passwd).
	Build func(BuildInput) (*specs.Spec, error)
}

// ImageMount is an image shown read-only in a container (KEP-4639).
type ImageMount struct {
	// Index is the mount's index in the container's mounts.
	Index int
	// Image is the image as the kubelet named it, for messages; ImageID is
	// its ID, the snapshot's parent.
	Image, ImageID string
	// ContainerPath is where the container sees it, for messages.
	ContainerPath string
}

// BuildInput is what the spec's builder gets from Create.
type BuildInput struct {
	// Rootfs is the mounted root filesystem.
	Rootfs string
	// Dir is the container's state dir (image VOLUMEs go under it).
	Dir string
	// ImageMounts are the mounted images by mount index: the container binds
	// them (or a sub path inside them).
	ImageMounts map[int]string
	// PIDNamespace is the pod's shared PID namespace (SharedPID), else "".
	PIDNamespace string
}

// Create makes a container: its state dir is reserved, its writable rootfs
// prepared and mounted, its image mounts mounted, its spec built (in.Build),
// its init created by the pod's shim, then its record written (CREATED). Any
// failure undoes every step, on a fresh bounded context: no dir, snapshot,
// mount, shim container or record is left, but what a mount that would not
// go holds (its snapshot, the dir), left for RemoveContainer or recovery.
func (s *Service) Create(ctx context.Context, in CreateInput) (_ *Container, retErr error) {
	id := in.Record.ID
	logPath, err := logPath(s.dir(id), in.Pod.LogDirectory, in.LogPath)
	if err != nil {
		return nil, err
	}
	dir := s.dir(id)
	if err := s.os.MakeDir(dir); err != nil {
		return nil, err
	}
	stuck := false // a mount that would not go keeps what is under it
	defer func() {
		if retErr != nil && !stuck {
			s.removeDir(ctx, dir)
		}
	}()
	snap, err := s.snaps.Prepare(ctx, id, in.Record.ImageID, false)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil && !stuck {
			s.removeSnapshot(ctx, id)
		}
	}()
	rootfs := s.rootfs(id)
	if err := s.mountSnapshot(snap, rootfs, in.Pod, in.MountLabel); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil && !stuck {
			stuck = !s.unmount(ctx, rootfs)
		}
	}()
	mounts, err := s.mountImages(ctx, in) // what it made, also when it fails
	defer func() {
		if retErr != nil && !stuck {
			stuck = !s.undoImageMounts(ctx, mounts)
		}
	}()
	if err != nil {
		return nil, err
	}
	spec, err := s.createInShim(ctx, in, rootfs, logPath, mounts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			s.deleteInShim(ctx, in.Pod.ID, id)
		}
	}()
	rec := in.Record
	rec.LogPath, rec.User = logPath, processUser(spec.Process)
	if rec.Spec, err = json.Marshal(spec); err != nil {
		return nil, fmt.Errorf("container %s: spec: %w", id, err)
	}
	if err := s.store.Add(rec); err != nil {
		return nil, err
	}
	log.G(ctx).Info("created container")
	return s.store.Get(id)
}

// createInShim builds the container's spec and has the pod's shim create
// its init. From the Create call on, the shim may hold the container
// whatever the call answers: a failure deletes it from the shim.
func (s *Service) createInShim(ctx context.Context, in CreateInput, rootfs, logPath string, mounts []imageMount) (_ *specs.Spec, retErr error) {
	shim, err := s.runner.Get(ctx, in.Pod.ID)
	if err != nil {
		return nil, err
	}
	b := BuildInput{Rootfs: rootfs, Dir: s.dir(in.Record.ID), ImageMounts: map[int]string{}}
	for _, m := range mounts {
		b.ImageMounts[m.index] = m.target
	}
	if in.SharedPID {
		pid, err := shim.Pause(ctx, runner.PauseArgs{UserNS: in.Pod.UserNS,
			ProcessLabel: in.Pod.SELinuxProcessLabel, MountLabel: in.Pod.SELinuxMountLabel})
		if err != nil {
			return nil, err
		}
		b.PIDNamespace = fmt.Sprintf("/proc/%d/ns/pid", pid)
	}
	spec, err := in.Build(b)
	if err != nil {
		return nil, err
	}
	if err := s.os.MakeDir(filepath.Dir(logPath)); err != nil {
		return nil, err
	}
	s.Watch(in.Pod)
	defer func() {
		if retErr != nil {
			s.deleteInShim(ctx, in.Pod.ID, in.Record.ID)
		}
	}()
	stdio := runner.IO{LogPath: logPath, Stdin: in.Stdin, StdinOnce: in.StdinOnce}
	if err := shim.Create(ctx, in.Record.ID, spec, stdio); err != nil {
		return nil, err
	}
	return spec, nil
}

// processUser is the user a spec's process runs as, its primary group among
// its groups, as ContainerStatus reports it.
func processUser(p *specs.Process) *User {
	if p == nil {
		return nil
	}
	u := p.User
	groups := append([]uint32{u.GID}, u.AdditionalGids...)
	slices.Sort(groups)
	return &User{UID: u.UID, GID: u.GID, Groups: slices.Compact(groups)}
}

// logPath is the pod's log directory joined with the container's log path,
// which must stay inside it; without either, the log goes into the
// container's state dir.
func logPath(ctrDir, podLogDir, path string) (string, error) {
	if podLogDir == "" || path == "" {
		return filepath.Join(ctrDir, "container.log"), nil
	}
	p := filepath.Join(podLogDir, path)
	if !strings.HasPrefix(p, filepath.Clean(podLogDir)+"/") {
		return "", fmt.Errorf("log path %q leaves the pod's log directory: %w", path, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// deleteInShim removes a container that the pod's shim may hold after a
// Create that failed once its request could have reached the shim (the
// caller's deadline passed while the shim worked, the connection was lost
// on the way back, or a later step failed). It runs on a fresh bounded
// context. The shim's Delete waits for its creates in flight and refuses a create of
// that ID that arrives later, so none can outlive the rollback; List only
// tells whether there was one, for the log.
func (s *Service) deleteInShim(ctx context.Context, pod, id string) {
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	shim, err := s.runner.Lookup(ctx, pod)
	if err != nil {
		if !errdefs.IsNotFound(err) {
			log.G(ctx).WithError(err).Warn("find the pod's shim to delete a container whose create failed")
		}
		return
	}
	ids, err := shim.List(ctx)
	if err != nil {
		log.G(ctx).WithError(err).Warn("list the shim's containers after a failed create")
	}
	if err := shim.Delete(ctx, id); err != nil {
		log.G(ctx).WithError(err).Error("delete a container whose create failed from the pod's shim; it stays there")
		return
	}
	if slices.Contains(ids, id) {
		log.G(ctx).Info("deleted from the pod's shim the container of a failed create")
	}
}
