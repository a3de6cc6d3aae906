package spec

import (
	"slices"
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestSELinuxOptions(t *testing.T) {
	const pod = "system_u:system_r:container_t:s0:c4,c9"
	for _, tc := range []struct {
		name string
		o    *runtime.SELinuxOption
		want []string
	}{
		{"none", nil, nil},
		{"empty", &runtime.SELinuxOption{}, nil},
		{"type only: the pod's level", &runtime.SELinuxOption{Type: "spc_t"}, []string{"type:spc_t", "level:s0:c4,c9"}},
		{"own level", &runtime.SELinuxOption{User: "u", Role: "r", Type: "t", Level: "s0:c1,c2"},
			[]string{"user:u", "role:r", "type:t", "level:s0:c1,c2"}},
	} {
		if got := ContainerSELinuxOptions(pod, tc.o); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := ContainerSELinuxOptions("", &runtime.SELinuxOption{Type: "t"}); !slices.Equal(got, []string{"type:t"}) {
		t.Errorf("without a pod label: %q", got)
	}
}
