package cri

import (
	"context"
	"net/http"
	"sync"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/cri/nri"
	"github.com/berth-cri/berth/cri/streaming"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/spec"
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
	// Puller pulls images into it; PullStats are its pull counters, for
	// the metrics endpoint.
	Puller    ImagePuller
	PullStats PullStatsSource
	// Pods are the pod sandboxes.
	Pods PodManager
	// Containers are the container domain; Shims serve exec and attach
	// sessions; Snapshots are measured for stats.
	Containers ContainerService
	Shims      Shims
	Snapshots  Snapshots
	// StateDir is berthd's volatile state dir (the sessions' FIFOs).
	StateDir string
	// Stats reads cgroups and pod network counters.
	Stats StatsReader
}

// Server implements runtime.v1 RuntimeService and ImageService.
type Server struct {
	runtime.UnimplementedRuntimeServiceServer
	runtime.UnimplementedImageServiceServer

	version   string
	config    *config.Config
	network   PodNetwork
	images    ImageStore
	puller    ImagePuller
	pullStats PullStatsSource
	pods      PodManager

	containers  ContainerService
	shims       Shims
	snapshots   Snapshots
	stateDir    string
	stats       StatsReader
	cpuSamples  cpuSamples
	streaming   *streaming.Server
	metricsHTTP *http.Server
	events      *eventHub

	// nri relays pod and container events to NRI plugins (a disabled
	// host until UseNRI); nriSpecs keeps the containers' specs for it.
	nri      *nri.Host
	nriSpecs specCache

	podNames, containerNames *names

	// bg lives as long as the server: the event dispatch runs in it.
	bg     context.Context
	stopBg context.CancelFunc

	rroOnce sync.Once
	rro     bool

	usernsOnce sync.Once
	userns     bool

	hugetlbOnce sync.Once
	hugetlbOK   bool

	lsmOnce sync.Once
	lsm     spec.LSM

	hostCapsOnce sync.Once
	hostCaps     []string
	hostCapsErr  error
}

// New returns a Server. It starts nothing.
func New(opts Options) *Server {
	s := &Server{version: opts.Version, config: opts.Config, network: opts.Network, images: opts.Images,
		puller: opts.Puller, pullStats: opts.PullStats, pods: opts.Pods, podNames: newNames(), containerNames: newNames(),
		containers: opts.Containers, shims: opts.Shims, snapshots: opts.Snapshots, stateDir: opts.StateDir, stats: opts.Stats,
		events: newEventHub()}
	s.bg, s.stopBg = context.WithCancel(context.Background())
	s.nri, _ = nri.New(nri.Config{}, nil) // disabled: never fails
	if opts.Pods != nil {
		for _, p := range opts.Pods.List() {
			// Recovered pods keep their names.
			s.podNames.owner[podName(podMetadata(p))] = p.ID
		}
	}
	if opts.Containers != nil {
		opts.Containers.SetNotify(func(ch container.Change) {
			s.events.changed(ch)
			s.nriExited(ch)
		})
	}
	if opts.Containers != nil && opts.Pods != nil {
		for _, c := range opts.Containers.List(nil) {
			if p, err := opts.Pods.Get(c.PodID); err == nil {
				s.containerNames.owner[containerName(&runtime.ContainerMetadata{Name: c.Name, Attempt: c.Attempt}, podMetadata(p))] = c.ID
			}
		}
	}
	return s
}

var (
	_ runtime.RuntimeServiceServer = (*Server)(nil)
	_ runtime.ImageServiceServer   = (*Server)(nil)
)

// Close stops the server's background work (the shims' exit watchers, the
// streaming sessions); the shims and their containers go on.
func (s *Server) Close() {
	s.stopBg()
	if s.containers != nil {
		s.containers.Close()
	}
	if s.streaming != nil {
		_ = s.streaming.Stop()
	}
	if s.metricsHTTP != nil {
		_ = s.metricsHTTP.Close()
	}
}
