package spec

import (
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SELinuxLabelOptions turns CRI SELinux options into label options as
// go-selinux's InitLabels takes them ("user:…", "role:…", "type:…",
// "level:…"); empty options give none.
func SELinuxLabelOptions(o *runtime.SELinuxOption) []string {
	var opts []string
	for _, kv := range [][2]string{{"user", o.GetUser()}, {"role", o.GetRole()}, {"type", o.GetType()}, {"level", o.GetLevel()}} {
		if kv[1] != "" {
			opts = append(opts, kv[0]+":"+kv[1])
		}
	}
	return opts
}

// ContainerSELinuxOptions are the label options of a container whose pod
// runs with podLabel: the container's own options, at the pod's level (its
// MCS categories) unless the container names one, so that the pod's
// containers share their files and /dev/shm with each other and with no other
// pod. No options means the pod's labels as they are.
func ContainerSELinuxOptions(podLabel string, o *runtime.SELinuxOption) []string {
	opts := SELinuxLabelOptions(o)
	if len(opts) == 0 || o.GetLevel() != "" {
		return opts
	}
	// user:role:type:level, the level holding colons itself (s0:c1,c2).
	if parts := strings.SplitN(podLabel, ":", 4); len(parts) == 4 {
		opts = append(opts, "level:"+parts[3])
	}
	return opts
}
