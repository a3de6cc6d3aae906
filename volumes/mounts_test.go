package volumes

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeInfo reports every path on one mount with the given optional fields.
func fakeInfo(optional string) MountInfo {
	return func(p string) (*mountinfo.Info, error) {
		return &mountinfo.Info{Mountpoint: "/", Optional: optional}, nil
	}
}

var podMapping = []*runtime.IDMapping{{ContainerId: 0, HostId: 100000, Length: 65536}}

func TestFromCRI(t *testing.T) {
	host := t.TempDir()
	real := filepath.Join(host, "real")
	os.Mkdir(real, 0o755)
	link := filepath.Join(host, "link")
	os.Symlink(real, link)
	missing := filepath.Join(host, "missing", "dir")

	tests := []struct {
		name     string
		mount    *runtime.Mount
		optional string
		want     specs.Mount
	}{
		{"private rw", &runtime.Mount{HostPath: real, ContainerPath: "/data"}, "",
			specs.Mount{Destination: "/data", Type: "bind", Source: real, Options: []string{"rbind", "rprivate", "rw"}}},
		{"symlink resolved, ro", &runtime.Mount{HostPath: link, ContainerPath: "/data", Readonly: true}, "",
			specs.Mount{Destination: "/data", Type: "bind", Source: real, Options: []string{"rbind", "rprivate", "ro"}}},
		{"recursive ro", &runtime.Mount{HostPath: real, ContainerPath: "/d", Readonly: true, RecursiveReadOnly: true}, "",
			specs.Mount{Destination: "/d", Type: "bind", Source: real, Options: []string{"rbind", "rprivate", "rro"}}},
		{"rslave on a slave mount", &runtime.Mount{HostPath: real, ContainerPath: "/d", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "master:3",
			specs.Mount{Destination: "/d", Type: "bind", Source: real, Options: []string{"rbind", "rslave", "rw"}}},
		{"rshared on a shared mount", &runtime.Mount{HostPath: real, ContainerPath: "/d", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}, "shared:1 master:2",
			specs.Mount{Destination: "/d", Type: "bind", Source: real, Options: []string{"rbind", "rshared", "rw"}}},
		{"missing host path created", &runtime.Mount{HostPath: missing, ContainerPath: "/m", SelinuxRelabel: true}, "",
			specs.Mount{Destination: "/m", Type: "bind", Source: missing, Options: []string{"rbind", "rprivate", "rw"}}},
		{"idmapped", &runtime.Mount{HostPath: real, ContainerPath: "/v", UidMappings: podMapping, GidMappings: podMapping}, "",
			specs.Mount{Destination: "/v", Type: "bind", Source: real, Options: []string{"rbind", "rprivate", "rw", "ridmap"},
				UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
				GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}}},
		{"mount options, once each", &runtime.Mount{HostPath: real, ContainerPath: "/o", Readonly: true,
			MountOptions: []string{"noexec", "nosuid", "noexec", "nodev"}}, "",
			specs.Mount{Destination: "/o", Type: "bind", Source: real, Options: []string{"rbind", "rprivate", "ro", "noexec", "nosuid", "nodev"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromCRI([]*runtime.Mount{tt.mount}, fakeInfo(tt.optional))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got[0], tt.want) {
				t.Fatalf("got %+v, want %+v", got[0], tt.want)
			}
		})
	}
	if fi, err := os.Stat(missing); err != nil || !fi.IsDir() {
		t.Fatalf("missing host path not created: %v", err)
	}
}

func TestFromCRIErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		mount    *runtime.Mount
		optional string
		want     func(error) bool
	}{
		{"relative container path", &runtime.Mount{HostPath: dir, ContainerPath: "data"}, "", errdefs.IsInvalidArgument},
		{"relative host path", &runtime.Mount{HostPath: "data", ContainerPath: "/data"}, "", errdefs.IsInvalidArgument},
		{"rro without ro", &runtime.Mount{HostPath: dir, ContainerPath: "/d", RecursiveReadOnly: true}, "", errdefs.IsInvalidArgument},
		{"rro with propagation", &runtime.Mount{HostPath: dir, ContainerPath: "/d", Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "shared:1", errdefs.IsInvalidArgument},
		{"rslave on a private mount", &runtime.Mount{HostPath: dir, ContainerPath: "/d", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, "", errdefs.IsFailedPrecondition},
		{"rshared on a slave mount", &runtime.Mount{HostPath: dir, ContainerPath: "/d", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}, "master:1", errdefs.IsFailedPrecondition},
		{"UID mappings only", &runtime.Mount{HostPath: dir, ContainerPath: "/d", UidMappings: podMapping}, "", errdefs.IsInvalidArgument},
		{"empty mapping", &runtime.Mount{HostPath: dir, ContainerPath: "/d", UidMappings: podMapping,
			GidMappings: []*runtime.IDMapping{{HostId: 100000}}}, "", errdefs.IsInvalidArgument},
		{"mapping past the last ID", &runtime.Mount{HostPath: dir, ContainerPath: "/d", GidMappings: podMapping,
			UidMappings: []*runtime.IDMapping{{HostId: 1<<32 - 10, Length: 100}}}, "", errdefs.IsInvalidArgument},
	}
	for _, o := range []string{"rw", "exec", "suid", "dev", "rshared", "remount", "bind", "rbind", "unbindable",
		"NOEXEC", "noexec,rw", "", "mode=777", "rnoexec"} {
		tests = append(tests, struct {
			name     string
			mount    *runtime.Mount
			optional string
			want     func(error) bool
		}{"mount option " + o, &runtime.Mount{HostPath: dir, ContainerPath: "/d", Readonly: true,
			MountOptions: []string{"nodev", o}}, "", errdefs.IsInvalidArgument})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromCRI([]*runtime.Mount{tt.mount}, fakeInfo(tt.optional))
			if err == nil || !tt.want(err) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

// TestRefusedMountOptionCreatesNothing: a mount refused for its options does
// not first create its missing host path.
func TestRefusedMountOptionCreatesNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := FromCRI([]*runtime.Mount{{HostPath: missing, ContainerPath: "/d", MountOptions: []string{"exec"}}}, fakeInfo(""))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `mount_options: "exec"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("host path made for a refused mount: %v", err)
	}
}

func TestHostMountInfoFindsRoot(t *testing.T) {
	m, err := HostMountInfo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.Mountpoint == "" {
		t.Fatal("no mount point")
	}
	if _, err := HostMountInfo("relative"); err == nil {
		t.Fatal("a relative path found a mount")
	}
}

func TestImageVolumes(t *testing.T) {
	base := t.TempDir()
	existing := []specs.Mount{{Destination: "/data/"}}
	got, err := ImageVolumes(map[string]struct{}{"/data": {}, "/var/cache": {}, "var/cache/": {}}, existing, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Destination != "/var/cache" {
		t.Fatalf("got %+v, want only /var/cache", got)
	}
	if fi, err := os.Stat(got[0].Source); err != nil || !fi.IsDir() || filepath.Dir(got[0].Source) != base {
		t.Fatalf("volume dir %s: %v", got[0].Source, err)
	}
	if _, err := ImageVolumes(map[string]struct{}{"/x": {}}, nil, "/proc/no-such/dir"); err == nil || errors.Is(err, os.ErrExist) {
		t.Fatalf("unwritable base: %v", err)
	}
}

func TestUseContainerUserNS(t *testing.T) {
	podUIDs := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 400000, Size: 65536}}
	podGIDs := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 500000, Size: 65536}}
	other := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 700000, Size: 10}}
	mounts := []specs.Mount{
		{Destination: "/pods", UIDMappings: podUIDs, GIDMappings: podGIDs},
		{Destination: "/other", UIDMappings: other, GIDMappings: podGIDs},
		{Destination: "/plain"},
	}
	UseContainerUserNS(mounts, nil, nil) // a container in the host's user namespace
	if mounts[0].UIDMappings == nil {
		t.Fatal("mappings were dropped for a container without a user namespace of its own")
	}
	UseContainerUserNS(mounts, podUIDs, podGIDs)
	if mounts[0].UIDMappings != nil || mounts[0].GIDMappings != nil {
		t.Errorf("the pod's mappings were kept: %+v", mounts[0])
	}
	if !slices.Equal(mounts[1].UIDMappings, other) || !slices.Equal(mounts[1].GIDMappings, podGIDs) {
		t.Errorf("other mappings were changed: %+v", mounts[1])
	}
	if mounts[2].UIDMappings != nil || mounts[2].GIDMappings != nil {
		t.Errorf("a plain mount got mappings: %+v", mounts[2])
	}
}
