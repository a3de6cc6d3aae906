package container

import (
	"testing"

	"github.com/containerd/errdefs"
)

func TestRelabelSharedRefusesSystemDirs(t *testing.T) {
	const mount = "system_u:object_r:container_file_t:s0:c1,c2"
	for _, p := range []string{"/", "/usr", "/etc/", "/var/lib", "//home"} {
		if err := RelabelShared(p, mount); !errdefs.IsInvalidArgument(err) {
			t.Errorf("relabel %s: %v, want InvalidArgument", p, err)
		}
	}
	if err := RelabelShared("/usr", ""); err != nil {
		t.Errorf("no label (no SELinux) relabels nothing: %v", err)
	}
	if got := WithMountLabel("lowerdir=a", mount); got != `lowerdir=a,context="`+mount+`"` {
		t.Errorf("mount options %q", got)
	}
}
