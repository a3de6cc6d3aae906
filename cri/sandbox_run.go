package cri

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cni"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
)

// RunPodSandbox creates a pod: its name is reserved first, then the sandbox
// domain makes its namespaces, /dev/shm and files and records it READY. On any
// error nothing is left and the name is free again. The pod network (CNI)
// comes with the networking issue: the network namespace is ready for it.
func (s *Server) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	if _, err := s.runtimeHandler(req.GetRuntimeHandler()); err != nil {
		return nil, err
	}
	spec, err := podSpec(req)
	if err != nil {
		return nil, err
	}
	if spec.UserNS != nil && !s.userNamespaces() {
		return nil, fmt.Errorf("this host cannot give pods user namespaces of their own (no idmapped mounts for the image store; see the log): %w",
			errdefs.ErrFailedPrecondition)
	}
	name, id := podName(req.GetConfig().GetMetadata()), newID()
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{"pod": name, "id": id}))
	if existing, ok, err := s.podNames.reserve(name, id); err != nil {
		return nil, err
	} else if ok {
		log.G(ctx).WithField("id", existing).Info("returning the pod a timed-out request created")
		return &runtime.RunPodSandboxResponse{PodSandboxId: existing}, nil
	}
	log.G(ctx).Info("running pod sandbox")
	// The pod is made even if the caller gives up meanwhile: a retry gets it.
	// Its own deadline covers the network attach and the undo of a failed one.
	podCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.podSetupTimeout())
	defer cancel()
	if err := s.createPod(podCtx, id, spec, req.GetConfig()); err != nil {
		s.podNames.release(name, id)
		return nil, err
	}
	if ctx.Err() != nil {
		s.podNames.orphaned(name, id)
		return nil, ctx.Err()
	}
	log.G(ctx).Info("pod sandbox ready")
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// createPod makes the pod, attaches its network and then records it READY;
// a failure removes the pod again, so nothing is left (and a crash meanwhile
// leaves a pod that the next start removes: sandbox.Pod.Creating).
func (s *Server) createPod(ctx context.Context, id string, spec sandbox.Spec, cfg *runtime.PodSandboxConfig) error {
	if err := s.podSELinux(cfg, &spec); err != nil {
		return err
	}
	p, err := s.pods.Create(ctx, id, spec)
	if err != nil {
		container.ReleaseSELinuxLabel(spec.SELinuxProcessLabel)
		return err
	}
	if err := s.attachNetwork(ctx, p, cfg); err != nil {
		s.undoPod(ctx, p)
		return err
	}
	if err := s.nriRunPod(ctx, p, func() error { return s.pods.MarkReady(id) }); err != nil {
		undo, cancel := cleanupContext(ctx)
		defer cancel()
		if derr := s.detachNetwork(undo, p); derr != nil {
			log.G(ctx).WithError(derr).Error("detach after a failed record")
		}
		s.undoPod(ctx, p)
		return err
	}
	return nil
}

// undoPod removes a pod whose RunPodSandbox failed; one that cannot be
// removed is left NOTREADY (and listed) for the kubelet to remove.
func (s *Server) undoPod(ctx context.Context, p *sandbox.Pod) {
	undo, cancel := cleanupContext(ctx)
	defer cancel()
	if err := s.pods.Remove(undo, p.ID); err != nil {
		log.G(ctx).WithError(err).Error("remove after a failed RunPodSandbox; the pod stays NOTREADY")
		_ = s.pods.Stop(undo, p.ID)
		return
	}
	container.ReleaseSELinuxLabel(p.Spec.SELinuxProcessLabel)
}

// podSetupTimeout bounds making a pod: a CNI ADD (at most the plugin
// timeout) and the rest (namespaces, files, records). Undoing a failed step
// runs on a fresh context of its own.
func (s *Server) podSetupTimeout() time.Duration {
	d := cni.DefaultPluginTimeout
	if s.config != nil && s.config.CNI.PluginTimeout > 0 {
		d = time.Duration(s.config.CNI.PluginTimeout)
	}
	return d + cleanupTimeout
}
