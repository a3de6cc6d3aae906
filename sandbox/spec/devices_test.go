package spec

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeDevices resolves /host/zero (c 1:5), /host/sda (b 8:0) and the
// directory /host/dri (c 226:0 and 226:128), as DeviceNodes would.
func fakeDevices(hostPath, ctrPath string) ([]specs.LinuxDevice, error) {
	node := func(p, typ string, major, minor int64) specs.LinuxDevice {
		mode, uid, gid := fmtMode(0o660), uint32(0), uint32(44)
		return specs.LinuxDevice{Path: p, Type: typ, Major: major, Minor: minor, FileMode: &mode, UID: &uid, GID: &gid}
	}
	switch hostPath {
	case "/host/zero":
		return []specs.LinuxDevice{node(ctrPath, "c", 1, 5)}, nil
	case "/host/sda":
		return []specs.LinuxDevice{node(ctrPath, "b", 8, 0)}, nil
	case "/host/dri":
		return []specs.LinuxDevice{node(ctrPath+"/card0", "c", 226, 0), node(ctrPath+"/renderD128", "c", 226, 128)}, nil
	}
	return nil, fmt.Errorf("device %s: no such host path: %w", hostPath, errdefs.ErrInvalidArgument)
}

func buildWithDevices(t *testing.T, privileged bool, devs ...*runtime.Device) (*specs.Spec, error) {
	t.Helper()
	in := baseInput()
	in.Config.Devices = devs
	in.ResolveDevice = fakeDevices
	if privileged {
		in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}}
		in.Host.Devices = []specs.LinuxDevice{{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5}, {Path: "/dev/sda", Type: "b", Major: 8, Minor: 0}}
	}
	b, err := Build(in)
	if err != nil {
		return nil, err
	}
	return b.Spec, nil
}

func rule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: &major, Minor: &minor, Access: access}
}

func TestDevices(t *testing.T) {
	s, err := buildWithDevices(t, false,
		&runtime.Device{HostPath: "/host/zero", ContainerPath: "/dev/mydev", Permissions: "r"},
		&runtime.Device{HostPath: "/host/sda", ContainerPath: "/dev/xvda", Permissions: "mwr"},
		&runtime.Device{HostPath: "/host/dri", ContainerPath: "/dev/dri/"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, d := range s.Linux.Devices {
		paths = append(paths, fmt.Sprintf("%s %s %d:%d %o %d:%d", d.Path, d.Type, d.Major, d.Minor, *d.FileMode, *d.UID, *d.GID))
	}
	want := []string{"/dev/mydev c 1:5 660 0:44", "/dev/xvda b 8:0 660 0:44", "/dev/dri/card0 c 226:0 660 0:44", "/dev/dri/renderD128 c 226:128 660 0:44"}
	if !slices.Equal(paths, want) {
		t.Errorf("devices = %q, want %q", paths, want)
	}
	wantRules := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"},
		rule("c", 1, 5, "r"), rule("b", 8, 0, "rwm"), rule("c", 226, 0, "rwm"), rule("c", 226, 128, "rwm")}
	if got := s.Linux.Resources.Devices; !equalRules(got, wantRules) {
		t.Errorf("device rules = %s, want %s", showRules(got), showRules(wantRules))
	}
}

// A device at a path already listed replaces it; a privileged container
// keeps its allow-all rule and its host devices, none listed twice.
func TestDevicesPrivilegedAndDuplicates(t *testing.T) {
	s, err := buildWithDevices(t, true,
		&runtime.Device{HostPath: "/host/sda", ContainerPath: "/dev/zero", Permissions: "r"},
		&runtime.Device{HostPath: "/host/zero", ContainerPath: "/dev/mydev"},
		&runtime.Device{HostPath: "/host/zero", ContainerPath: "/dev/mydev", Permissions: "rw"},
	)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range s.Linux.Devices {
		got = append(got, fmt.Sprintf("%s %s %d:%d", d.Path, d.Type, d.Major, d.Minor))
	}
	if want := []string{"/dev/zero b 8:0", "/dev/sda b 8:0", "/dev/mydev c 1:5"}; !slices.Equal(got, want) {
		t.Errorf("devices = %q, want %q", got, want)
	}
	if want := []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}; !equalRules(s.Linux.Resources.Devices, want) {
		t.Errorf("device rules = %s, want allow-all", showRules(s.Linux.Resources.Devices))
	}
}

// The device rules survive the CRI resources, which replace the rest of
// the spec's resources.
func TestDevicesWithResources(t *testing.T) {
	in := baseInput()
	in.Config.Devices = []*runtime.Device{{HostPath: "/host/zero", ContainerPath: "/dev/mydev", Permissions: "rw"}}
	in.Config.Linux = &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 30}}
	in.ResolveDevice = fakeDevices
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, rule("c", 1, 5, "rw")}
	if got := b.Spec.Linux.Resources.Devices; !equalRules(got, want) || b.Spec.Linux.Resources.Memory == nil {
		t.Errorf("resources = %+v, device rules %s", b.Spec.Linux.Resources, showRules(got))
	}
}

func TestDevicesRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		dev  *runtime.Device
		want string
	}{
		{"permissions", &runtime.Device{HostPath: "/host/zero", ContainerPath: "/dev/x", Permissions: "rx"}, `permissions "rx"`},
		{"permissions upper case", &runtime.Device{HostPath: "/host/zero", ContainerPath: "/dev/x", Permissions: "RW"}, `permissions "RW"`},
		{"relative container path", &runtime.Device{HostPath: "/host/zero", ContainerPath: "dev/x"}, `container path "dev/x"`},
		{"container path /", &runtime.Device{HostPath: "/host/zero", ContainerPath: "/.."}, `container path "/.."`},
		{"relative host path, no container path", &runtime.Device{HostPath: "zero"}, `container path "zero"`},
		{"no such device", &runtime.Device{HostPath: "/host/none", ContainerPath: "/dev/x"}, "/host/none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := buildWithDevices(t, false, tc.dev)
			if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "devices") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want InvalidArgument naming devices and %s", err, tc.want)
			}
		})
	}
}

func TestDeviceAccess(t *testing.T) {
	for in, want := range map[string]string{"": "rwm", "r": "r", "w": "w", "m": "m", "wr": "rw", "mrw": "rwm", "rr": "r"} {
		if got, err := deviceAccess(in); err != nil || got != want {
			t.Errorf("deviceAccess(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

func fmtMode(m uint32) os.FileMode { return os.FileMode(m) }

func equalRules(a, b []specs.LinuxDeviceCgroup) bool {
	return showRules(a) == showRules(b)
}

func showRules(rules []specs.LinuxDeviceCgroup) string {
	var out []string
	for _, r := range rules {
		n := func(p *int64) string {
			if p == nil {
				return "*"
			}
			return fmt.Sprint(*p)
		}
		out = append(out, fmt.Sprintf("%v %s %s:%s %s", r.Allow, r.Type, n(r.Major), n(r.Minor), r.Access))
	}
	return strings.Join(out, ", ")
}

// A privileged container of a runtime handler with
// privileged_without_host_devices gets no host device and no access to every
// device: only what its config lists, with cgroup rules for it.
func TestPrivilegedWithoutHostDevices(t *testing.T) {
	in := baseInput()
	in.Config.Devices = []*runtime.Device{{HostPath: "/host/zero", ContainerPath: "/dev/mydev", Permissions: "r"}}
	in.ResolveDevice = fakeDevices
	in.Config.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}}
	in.Host.Devices = []specs.LinuxDevice{{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0}}
	in.Host.PrivilegedWithoutHostDevices = true
	b, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	s := b.Spec
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/mydev" {
		t.Fatalf("devices %v, want only /dev/mydev", s.Linux.Devices)
	}
	want := []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, rule("c", 1, 5, "r")}
	if !reflect.DeepEqual(s.Linux.Resources.Devices, want) {
		t.Fatalf("device rules %v, want %v", s.Linux.Resources.Devices, want)
	}
	if len(s.Linux.MaskedPaths) != 0 {
		t.Fatalf("masked paths %v: the container is privileged otherwise", s.Linux.MaskedPaths)
	}
}
