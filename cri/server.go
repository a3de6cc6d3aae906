package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
)

// NetworkStatus tells whether the pod network is usable (implemented by cni.Manager).
type NetworkStatus interface {
	// Status returns nil when pods can be networked, else what is missing.
	Status(ctx context.Context) error
}

// Options are what the server is built from; cmd/berthd fills them.
type Options struct {
	// Version is Berth's semver version, from the build.
	Version string
	// Config is the effective configuration, reported by Status(verbose).
	Config *config.Config
	// Network attaches pods and reports pod network readiness.
	Network PodNetwork
	// Images is the image store.
	Images ImageStore
	// Puller pulls images into it.
	Puller ImagePuller
	// Pods are the pod sandboxes.
	Pods PodManager
}

// Server implements runtime.v1 RuntimeService and ImageService.
type Server struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	version string
	config  *config.Config
	network PodNetwork
	images  ImageStore
	puller  ImagePuller
	pods    PodManager

	podNames *names
}

// New returns a Server. It starts nothing.
func New(opts Options) *Server {
	s := &Server{version: opts.Version, config: opts.Config, network: opts.Network, images: opts.Images,
		puller: opts.Puller, pods: opts.Pods, podNames: newNames()}
	if opts.Pods != nil {
		for _, p := range opts.Pods.List() {
			// Recovered pods keep their names.
			s.podNames.owner[podName(podMetadata(p))] = p.ID
		}
	}
	return s
}

var (
	_ runtime.RuntimeServiceServer = (*Server)(nil)
	_ runtime.ImageServiceServer   = (*Server)(nil)
)
