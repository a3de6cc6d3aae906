package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/berth-cri/berth/cri/config"
)

// RuntimeConfig tells the kubelet which cgroup driver Berth uses. The driver is
// always set explicitly: the enum's zero value is SYSTEMD, so an empty answer
// would send a cgroupfs kubelet to systemd.
func (s *Server) RuntimeConfig(ctx context.Context, _ *runtime.RuntimeConfigRequest) (*runtime.RuntimeConfigResponse, error) {
	driver := runtime.CgroupDriver_CGROUPFS
	if s.config.CgroupDriver == config.SystemdDriver {
		driver = runtime.CgroupDriver_SYSTEMD
	}
	return &runtime.RuntimeConfigResponse{Linux: &runtime.LinuxRuntimeConfiguration{CgroupDriver: driver}}, nil
}

// UpdateRuntimeConfig takes the node's pod CIDR, which the kubelet sends once
// it knows it (and again when it changes): Berth's embedded default network
// allocates from it unless cni.default_subnet names a subnet (see cni
// SetPodCIDR). An empty CIDR changes nothing; a malformed one is
// InvalidArgument.
func (s *Server) UpdateRuntimeConfig(ctx context.Context, req *runtime.UpdateRuntimeConfigRequest) (*runtime.UpdateRuntimeConfigResponse, error) {
	cidr := req.GetRuntimeConfig().GetNetworkConfig().GetPodCidr()
	if err := s.network.SetPodCIDR(ctx, cidr); err != nil {
		return nil, err
	}
	return &runtime.UpdateRuntimeConfigResponse{}, nil
}
