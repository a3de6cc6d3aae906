package spec

import (
	"fmt"

	"github.com/containerd/errdefs"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// refuseUnsupported fails a container config that asks for what Berth does
// not do yet, naming the field, so that the kubelet reports it instead of a
// container running without what it was promised: cdi_devices (CDI specs).
// Unimplemented, not InvalidArgument: the request is well formed.
func refuseUnsupported(cfg *runtime.ContainerConfig) error {
	if d := cfg.GetCDIDevices(); len(d) > 0 {
		return fmt.Errorf("cdi_devices (%s): CDI devices are not supported yet: %w", d[0].GetName(), errdefs.ErrNotImplemented)
	}
	return nil
}
