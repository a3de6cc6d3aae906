package cri

import (
	"context"
	"fmt"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
)

// ContainerService is the container domain (container.Service): records,
// root filesystems, the containers' inits in their pods' shims, exits,
// cleanup and recovery. Start, Stop and Remove claim the container; cri
// claims the pod around them.
type ContainerService interface {
	Get(id string) (*container.Container, error)
	Find(idOrPrefix string) (*container.Container, error)
	List(keep func(*container.Container) bool) []*container.Container
	// SetNotify makes fn hear of every recorded change of state, in order.
	SetNotify(fn func(container.Change))

	Create(ctx context.Context, in container.CreateInput) (*container.Container, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, timeout time.Duration) error
	Remove(ctx context.Context, id, cgroupParent string) error
	UpdateResources(ctx context.Context, id string, u container.ResourceUpdate) error
	// StopPod kills a pod's containers; RemovePod removes them and stops
	// the pod's shim.
	StopPod(ctx context.Context, pod string) error
	RemovePod(ctx context.Context, pod, cgroupParent string) error
	// Recover reconciles the containers with the pods (before serving).
	Recover(ctx context.Context, in container.RecoverInput)
	// Close stops the exit watchers.
	Close()
}

// Shims gives each pod its berth-shim (runner.Pool): what exec, attach and
// port-forward sessions need of it.
type Shims interface {
	Lookup(ctx context.Context, pod string) (*runner.Client, error)
	// Pods lists the pods that have shim files.
	Pods() []string
	// Exec runs a process in a running container of pod (ExecSync).
	Exec(ctx context.Context, pod, id string, args []string, timeout time.Duration, limit int) (runner.ExecReply, error)
}

// Snapshots are the image store's snapshots (images.Service): the container
// domain prepares them (through ContainerSnapshots), stats measure them.
type Snapshots interface {
	PrepareSnapshot(ctx context.Context, key, image string, readOnly bool) (*images.Rootfs, error)
	RemoveSnapshot(ctx context.Context, key string) error
	SnapshotKeys() ([]string, error)
	// SnapshotUsage is the disk use of a writable layer, measured at
	// most every few seconds; SnapshotsDir is where they are.
	SnapshotUsage(key string) (bytes, inodes int64, err error)
	SnapshotsDir() string
}

// ContainerSnapshots gives the container domain the image store's snapshots
// (container.Snapshots), which it knows only as plain dirs and options.
type ContainerSnapshots struct{ Images Snapshots }

// Prepare prepares a snapshot (images.Service.PrepareSnapshot).
func (c ContainerSnapshots) Prepare(ctx context.Context, key, image string, readOnly bool) (*container.Snapshot, error) {
	r, err := c.Images.PrepareSnapshot(ctx, key, image, readOnly)
	if err != nil {
		return nil, err
	}
	opts, chdir := r.MountOptions()
	return &container.Snapshot{Lower: r.Lower, Upper: r.Upper, Work: r.Work, Options: opts, Chdir: chdir}, nil
}

// Remove removes a snapshot (images.Service.RemoveSnapshot).
func (c ContainerSnapshots) Remove(ctx context.Context, key string) error {
	return c.Images.RemoveSnapshot(ctx, key)
}

// Keys lists the snapshots (images.Service.SnapshotKeys).
func (c ContainerSnapshots) Keys() ([]string, error) { return c.Images.SnapshotKeys() }

func containerName(md *runtime.ContainerMetadata, pod *runtime.PodSandboxMetadata) string {
	return fmt.Sprintf("%s_%s_%s_%s_%d", md.GetName(), pod.GetName(), pod.GetNamespace(), pod.GetUid(), md.GetAttempt())
}

// containerPod is what the container domain knows of a pod, or false for a
// pod that is gone.
func (s *Server) containerPod(id string) (container.Pod, bool) {
	p, err := s.pods.Get(id)
	if err != nil {
		return container.Pod{}, false
	}
	return podFacts(p), true
}

// podFacts are the facts about a pod that its containers need.
func podFacts(p *sandbox.Pod) container.Pod {
	out := container.Pod{ID: p.ID, CgroupParent: cgroupParent(p), LogDirectory: p.Spec.LogDirectory,
		SELinuxProcessLabel: p.Spec.SELinuxProcessLabel, SELinuxMountLabel: p.Spec.SELinuxMountLabel}
	if u := p.Spec.UserNS; u != nil {
		out.UserNS = p.Pins[sandbox.UserNS]
		out.RootUID, out.RootGID = u.Root()
	}
	return out
}

func criState(st container.State) runtime.ContainerState {
	switch st {
	case container.Created:
		return runtime.ContainerState_CONTAINER_CREATED
	case container.Running:
		return runtime.ContainerState_CONTAINER_RUNNING
	case container.Exited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

func trimSlash(s string) string { return "/" + strings.Trim(s, "/") }
