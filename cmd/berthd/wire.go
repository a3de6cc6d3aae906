package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-cri/berth/cni"
	"github.com/berth-cri/berth/cri"
	"github.com/berth-cri/berth/cri/config"
	"github.com/berth-cri/berth/cri/nri"
	"github.com/berth-cri/berth/images"
	"github.com/berth-cri/berth/images/remote"
	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
	"github.com/berth-cri/berth/sandbox/runner"
)

// newServer builds every component from the configuration, recovers their
// state, and returns the CRI server and a function that closes what needs it.
func newServer(ctx context.Context, cfg *config.Config) (*cri.Server, func(), error) {
	imgOpts, err := imageOptions(cfg)
	if err != nil {
		return nil, nil, err
	}
	imageStore, err := images.New(ctx, imgOpts)
	if err != nil {
		return nil, nil, err
	}
	pods, err := sandbox.NewManager(sandbox.HostOS{Holder: besideBerthd("berth-runtime")}, cfg.Root, cfg.State)
	if err == nil {
		err = pods.Recover(ctx)
	}
	if err != nil {
		imageStore.Close()
		return nil, nil, err
	}
	network := cni.New(cniOptions(cfg))
	live := map[string]bool{}
	for _, p := range pods.List() {
		live[p.ID] = true
	}
	for _, id := range pods.Unreadable() { // kept whole, network included
		live[id] = true
	}
	// Detach the pods that are gone while their namespaces still exist.
	network.Collect(ctx, live)
	if err := pods.RemoveOrphans(ctx); err != nil {
		imageStore.Close()
		return nil, nil, err
	}
	containers, err := container.NewStore(filepath.Join(cfg.Root, "containers"))
	if err == nil {
		err = containers.Load(ctx)
	}
	if err != nil {
		imageStore.Close()
		return nil, nil, err
	}
	stats, err := sandbox.NewStatsReader()
	if err != nil {
		imageStore.Close()
		return nil, nil, err
	}
	shims := runner.NewPool(runner.Binaries{Shim: besideBerthd("berth-shim"), Runtime: besideBerthd("berth-runtime")},
		filepath.Join(cfg.State, "shims"))
	ctrs := container.NewService(container.Options{Store: containers, Runner: container.PoolRunner{Pool: shims},
		Snapshots: cri.ContainerSnapshots{Images: imageStore}, OS: container.HostOS{}, StateDir: cfg.State})
	srv := cri.New(cri.Options{Version: version, Config: cfg, Network: network,
		Images: imageStore, Puller: imageStore, PullStats: imageStore, Pods: pods, Containers: ctrs, Snapshots: imageStore,
		Shims: shims, StateDir: cfg.State, Stats: stats})
	srv.Recover(ctx)
	host, err := nri.New(nri.FromConfig(cfg.NRI), srv.NRIDomain(), nri.WithVersion(version))
	if err == nil {
		srv.UseNRI(host)
		err = host.Start(ctx) // after recovery, before serving
	}
	if err != nil {
		srv.Close()
		imageStore.Close()
		return nil, nil, err
	}
	if err := startServers(srv, cfg); err != nil {
		host.Stop()
		srv.Close()
		imageStore.Close()
		return nil, nil, err
	}
	return srv, func() { host.Stop(); srv.Close(); imageStore.Close() }, nil
}

func cniOptions(cfg *config.Config) cni.Options {
	return cni.Options{
		ConfDir:        cfg.CNI.ConfDir,
		BinDirs:        cfg.CNI.BinDirs,
		DefaultNetwork: cfg.CNI.DefaultNetwork,
		DefaultBridge:  cfg.CNI.DefaultBridge,
		DefaultSubnet:  cfg.CNI.DefaultSubnet,
		CacheDir:       filepath.Join(cfg.Root, "cni", "cache"),
		DataDir:        filepath.Join(cfg.Root, "cni", "networks"),
		PodCIDRFile:    filepath.Join(cfg.Root, "cni", "pod-cidr"),
		PluginTimeout:  time.Duration(cfg.CNI.PluginTimeout),
	}
}

// imageOptions maps berth.toml to the image service: hosts from the certs.d
// dir first, then [registries."host"] tables, which win for their host.
func imageOptions(cfg *config.Config) (images.Options, error) {
	hosts := remote.Hosts{}
	if dir := cfg.Image.RegistryConfigPath; dir != "" {
		var err error
		if hosts, err = remote.LoadHostsDir(dir); err != nil {
			return images.Options{}, err
		}
	}
	for host, r := range cfg.Registries {
		h := remote.Host{MirrorsOnly: r.MirrorsOnly, Insecure: r.Insecure, CAFile: r.CAFile}
		for _, m := range r.Mirrors {
			h.Mirrors = append(h.Mirrors, remote.Endpoint{URL: m, SkipVerify: r.Insecure, CAFile: r.CAFile})
		}
		hosts[host] = h
	}
	return images.Options{
		Root:                   filepath.Join(cfg.Root, "images"),
		Hosts:                  hosts,
		MaxConcurrentDownloads: cfg.Image.MaxConcurrentDownloads,
		FetchConnections:       cfg.Image.BlobFetchConnections,
		FetchChunkSize:         cfg.Image.BlobFetchChunkSize,
		ProgressTimeout:        time.Duration(cfg.Image.PullProgressTimeout),
		MinRate:                cfg.Image.PullMinRate,
		MinRateWindow:          time.Duration(cfg.Image.PullProgressTimeout),
		Pinned:                 cfg.Image.PinnedImages,
	}, nil
}

// besideBerthd is the binary name in berthd's directory (make build and make
// install put berthd, berth-shim and berth-runtime in the same one).
func besideBerthd(name string) string {
	self, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(self), name)
}

// startServers starts the streaming server (HTTPS with the configured
// certificate) and, when configured, the metrics endpoint.
func startServers(srv *cri.Server, cfg *config.Config) error {
	var tlsConf *tls.Config
	if cfg.Streaming.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Streaming.TLSCertFile, cfg.Streaming.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("streaming TLS: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := srv.StartStreaming(net.JoinHostPort(cfg.Streaming.Address, cfg.Streaming.Port), tlsConf); err != nil {
		return err
	}
	if cfg.Metrics.Address != "" {
		return srv.StartMetrics(cfg.Metrics.Address)
	}
	return nil
}
