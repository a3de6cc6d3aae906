package cri

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/spec"
)

// CreateContainer makes a container in a READY pod, which it claims (a stop
// or remove of the pod waits for the create, and one begun refuses it): its name is reserved, its
// writable rootfs prepared and mounted, its OCI spec built, its init created
// by the pod's shim, then its record written. Any failure undoes every step.
// Image mounts (Mount.image) are mounted read-only from pulled images
// (container_imagemount.go).
func (s *Server) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (_ *runtime.CreateContainerResponse, retErr error) {
	cfg := req.GetConfig()
	if cfg.GetMetadata().GetName() == "" || cfg.GetImage().GetImage() == "" {
		return nil, fmt.Errorf("container config needs a name and an image: %w", errdefs.ErrInvalidArgument)
	}
	pod, release, err := s.usePod(req.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	defer release() // the pod is not stopped under the create
	if pod.Spec.UserNS != nil && cfg.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("a pod with its own user namespace cannot have privileged containers: %w", errdefs.ErrInvalidArgument)
	}
	img, err := s.images.Get(ctx, cfg.GetImage().GetImage())
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", cfg.GetImage().GetImage(), err)
	}
	stopSignal, err := stopSignal(cfg, img)
	if err != nil {
		return nil, err
	}
	id, name := newID(), containerName(cfg.GetMetadata(), podMetadata(pod))
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{"container": name, "id": id}))
	if _, _, err := s.containerNames.reserve(name, id); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			s.containerNames.release(name, id)
		}
	}()
	labels, err := s.containerSELinux(pod, cfg.GetLinux().GetSecurityContext())
	if err != nil {
		return nil, err
	}
	rootfs, err := s.mountRootfs(ctx, id, img, pod, labels.mount)
	if err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			undo, cancel := cleanupContext(ctx)
			defer cancel()
			s.unmountRootfs(undo, id)
		}
	}()
	// The rootfs's rollback above unmounts these too.
	specCfg, imageRefs, err := s.mountImages(ctx, id, cfg, pod, labels.mount)
	if err != nil {
		return nil, err
	}
	logPath, user, err := s.createInShim(ctx, id, pod, img, specCfg, rootfs, labels)
	if err != nil {
		return nil, err
	}
	defer func() { // before the rootfs is unmounted
		if retErr != nil {
			s.deleteInShim(ctx, pod.ID, id)
		}
	}()
	raw, _ := protojson.Marshal(cfg)
	rec := container.Container{ID: id, PodID: pod.ID, Name: cfg.GetMetadata().GetName(), Attempt: cfg.GetMetadata().GetAttempt(),
		Image: cfg.GetImage().GetImage(), ImageID: img.ID, ImageRef: imageRef(img), Labels: cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(), LogPath: logPath, StopSignal: int(stopSignal), Mounts: recordMounts(cfg.GetMounts(), imageRefs),
		Resources: recordResources(cfg.GetLinux().GetResources()), User: user,
		Config: raw}
	if err := s.addContainer(rec); err != nil {
		return nil, err
	}
	log.G(ctx).Info("created container")
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// stopSignal is the signal that stops the container: the CRI config's, else
// the image's, else SIGTERM.
func stopSignal(cfg *runtime.ContainerConfig, img *images.Image) (syscall.Signal, error) {
	name := img.Config.StopSignal
	if cfg.GetStopSignal() != runtime.Signal_SIGNAL_RUNTIME_DEFAULT {
		name = cfg.GetStopSignal().String()
	}
	return spec.ParseSignal(name)
}

// recordMounts are the CRI mounts as the record keeps them; imageRefs are
// the IDs of the images the image mounts show, by index.
func recordMounts(in []*runtime.Mount, imageRefs map[int]string) []container.Mount {
	var out []container.Mount
	for i, m := range in {
		out = append(out, container.Mount{ContainerPath: m.GetContainerPath(), HostPath: m.GetHostPath(), Readonly: m.GetReadonly(),
			RecursiveReadOnly: m.GetRecursiveReadOnly(), SelinuxRelabel: m.GetSelinuxRelabel(), Propagation: int32(m.GetPropagation()),
			Image: m.GetImage().GetImage(), ImageRef: imageRefs[i], ImageSubPath: m.GetImageSubPath(),
			MountOptions: m.GetMountOptions()})
	}
	return out
}

// imageRef is the repo digest the kubelet shows, or the ID.
func imageRef(img *images.Image) string {
	if len(img.RepoDigests) > 0 {
		return img.RepoDigests[0]
	}
	return img.ID
}

// mountRootfs prepares the container's writable layer and mounts its rootfs
// (its files labelled mountLabel on a host with SELinux); in a pod with its
// own user namespace the layers are idmapped into it.
func (s *Server) mountRootfs(ctx context.Context, id string, img *images.Image, pod *sandbox.Pod, mountLabel string) (string, error) {
	snap, err := s.snapshots.PrepareSnapshot(ctx, id, img.ID, false)
	if err != nil {
		return "", err
	}
	target := filepath.Join(s.containerDir(id), "rootfs")
	if u := pod.Spec.UserNS; u != nil {
		uid, gid := u.Root()
		err = container.MountRootfsMapped(container.Layers{Lower: snap.Lower, Upper: snap.Upper, Work: snap.Work, MountLabel: mountLabel},
			target, pod.Pins[sandbox.UserNS], uid, gid)
	} else {
		opts, dir := snap.MountOptions()
		err = container.MountRootfs(container.WithMountLabel(opts, mountLabel), dir, target)
	}
	if err != nil {
		undo, cancel := cleanupContext(ctx)
		defer cancel()
		_ = s.snapshots.RemoveSnapshot(undo, id)
		return "", err
	}
	return target, nil
}

// unmountRootfs unmounts a container's rootfs and image mounts, removes
// their snapshots and the container's dir.
func (s *Server) unmountRootfs(ctx context.Context, id string) {
	dir := s.containerDir(id)
	if err := s.unmountImages(ctx, id); err != nil {
		log.G(ctx).WithError(err).Warn("unmount image mounts")
		return
	}
	if err := container.UnmountRootfs(filepath.Join(dir, "rootfs")); err != nil {
		log.G(ctx).WithError(err).Warn("unmount rootfs")
		return
	}
	_ = s.snapshots.RemoveSnapshot(ctx, id)
	_ = container.RemoveDir(dir)
}
