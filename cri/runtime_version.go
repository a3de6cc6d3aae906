package cri

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	// kubeletAPIVersion is the CRI API version string; the kubelet exits at
	// start-up on any other value.
	kubeletAPIVersion = "0.1.0"
	runtimeName       = "berth"
	runtimeAPIVersion = "v1"
)

// Version reports the runtime's name and version. The request's version field is
// the client's API version; v1 has only one, so it is not checked.
func (s *Server) Version(ctx context.Context, _ *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	return &runtime.VersionResponse{
		Version:           kubeletAPIVersion,
		RuntimeName:       runtimeName,
		RuntimeVersion:    s.version,
		RuntimeApiVersion: runtimeAPIVersion,
	}, nil
}
