package cri

import (
	"context"
	"fmt"
	"syscall"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/spec"
)

// CreateContainer makes a container in a READY pod, which it claims (a stop
// or remove of the pod waits for the create, and one begun refuses it): the
// request is checked and its images found, its name reserved, then the
// container domain makes it (rootfs, image mounts, the spec built here from
// the CRI config, the init in the pod's shim, the record). Any failure
// undoes every step and frees the name.
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
	sharedPID, err := sharedPIDNamespace(pod, cfg)
	if err != nil {
		return nil, err
	}
	imageMounts, err := s.imageMounts(ctx, cfg)
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
	rec := containerRecord(id, pod, cfg, img, stopSignal, imageMounts)
	hooks := s.nriCreateStart(pod, rec)
	c, err := s.containers.Create(ctx, container.CreateInput{
		Pod: podFacts(pod), Record: rec,
		MountLabel: labels.mount, ImageMounts: imageMounts, LogPath: cfg.GetLogPath(), SharedPID: sharedPID,
		Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(),
		Build: func(b container.BuildInput) (*specs.Spec, error) {
			sp, err := s.buildSpec(ctx, id, pod, img, cfg, b, labels)
			if err != nil {
				return nil, err
			}
			return sp, hooks.adjust(ctx, sp)
		},
	})
	hooks.done(ctx, c, err)
	if err != nil {
		return nil, err
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// containerRecord is the record of a new container, as the CRI config and
// the image give it (the container domain adds its log path and user).
func containerRecord(id string, pod *sandbox.Pod, cfg *runtime.ContainerConfig, img *images.Image, stop syscall.Signal,
	imageMounts []container.ImageMount) container.Container {
	raw, _ := protojson.Marshal(cfg)
	refs := map[int]string{}
	for _, m := range imageMounts {
		refs[m.Index] = m.ImageID
	}
	return container.Container{ID: id, PodID: pod.ID, Name: cfg.GetMetadata().GetName(), Attempt: cfg.GetMetadata().GetAttempt(),
		Image: cfg.GetImage().GetImage(), ImageID: img.ID, ImageRef: imageRef(img), Labels: cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(), StopSignal: int(stop), Mounts: recordMounts(cfg.GetMounts(), refs),
		Resources: recordResources(cfg.GetLinux().GetResources()), Config: raw}
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
