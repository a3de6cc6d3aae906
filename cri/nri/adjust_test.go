package nri

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/containerd/nri/pkg/api"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

// baseSpec is a container spec as sandbox/spec builds one, in small.
func baseSpec() *specs.Spec {
	return &specs.Spec{
		Annotations: map[string]string{"keep": "1", "drop": "2"},
		Process: &specs.Process{
			Args:    []string{"/bin/app", "-v"},
			Env:     []string{"PATH=/usr/bin", "A=1", "C=3"},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs"},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts"},
			{Destination: "/data", Type: "bind", Source: "/srv/data", Options: []string{"rbind"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "network", Path: "/run/berth/netns/p"}, {Type: "ipc"}},
			Resources: &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: ptr[int64](100 << 20), Swap: ptr[int64](100 << 20)},
				CPU:    &specs.LinuxCPU{Shares: ptr[uint64](2)},
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"},
					{Allow: true, Type: "c", Major: ptr[int64](1), Minor: ptr[int64](3), Access: "rwm"}},
			},
			Devices:     []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}},
			Sysctl:      map[string]string{"net.ipv4.ip_forward": "0", "kernel.msgmax": "8192"},
			CgroupsPath: "/kubepods/pod1/ctr1",
		},
	}
}

// libraryAdjustment is an adjustment as the nri library returns one when no
// plugin adjusted anything: every container present, every value unset.
func libraryAdjustment() *api.ContainerAdjustment {
	return &api.ContainerAdjustment{
		Annotations: map[string]string{}, Mounts: []*api.Mount{}, Env: []*api.KeyValue{}, Hooks: &api.Hooks{},
		Rlimits: []*api.POSIXRlimit{}, CDIDevices: []*api.CDIDevice{},
		Linux: &api.LinuxContainerAdjustment{
			Devices: []*api.LinuxDevice{},
			Resources: &api.LinuxResources{Memory: &api.LinuxMemory{}, Cpu: &api.LinuxCPU{},
				HugepageLimits: []*api.HugepageLimit{}, Unified: map[string]string{}},
			Namespaces: []*api.LinuxNamespace{}, NetDevices: map[string]*api.LinuxNetDevice{}, Sysctl: map[string]string{},
		},
	}
}

func adjust(f func(a *api.ContainerAdjustment)) *api.ContainerAdjustment {
	a := libraryAdjustment()
	f(a)
	return a
}

func TestApplyAdjustmentNothingToDo(t *testing.T) {
	for name, adj := range map[string]*api.ContainerAdjustment{"nil": nil, "empty": {}, "as the library returns it": libraryAdjustment()} {
		t.Run(name, func(t *testing.T) {
			s := baseSpec()
			if err := ApplyAdjustment(s, adj); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s, baseSpec()) {
				t.Fatalf("spec changed:\n%+v", s)
			}
		})
	}
}

func TestApplyAdjustment(t *testing.T) {
	tests := []struct {
		name  string
		adj   *api.ContainerAdjustment
		check func(t *testing.T, s *specs.Spec)
	}{
		{"annotations", adjust(func(a *api.ContainerAdjustment) {
			a.AddAnnotation("new", "x")
			a.RemoveAnnotation("drop")
			a.AddAnnotation("keep", "9")
		}),
			func(t *testing.T, s *specs.Spec) {
				want(t, s.Annotations, map[string]string{"keep": "9", "new": "x"})
			}},
		{"removed and set again: set", adjust(func(a *api.ContainerAdjustment) { a.RemoveAnnotation("drop"); a.AddAnnotation("drop", "new") }),
			func(t *testing.T, s *specs.Spec) {
				want(t, s.Annotations, map[string]string{"keep": "1", "drop": "new"})
			}},
		{"args", adjust(func(a *api.ContainerAdjustment) { a.SetArgs([]string{"/bin/other", "--x"}) }),
			func(t *testing.T, s *specs.Spec) { want(t, s.Process.Args, []string{"/bin/other", "--x"}) }},
		{"env", adjust(func(a *api.ContainerAdjustment) {
			a.AddEnv("B", "2")
			a.AddEnv("A", "one")
			a.RemoveEnv("C")
			a.AddEnv("D", "4")
		}), func(t *testing.T, s *specs.Spec) {
			want(t, s.Process.Env, []string{"PATH=/usr/bin", "A=one", "B=2", "D=4"})
		}},
		{"env set twice, last wins", adjust(func(a *api.ContainerAdjustment) {
			a.AddEnv("E", "1")
			a.AddEnv("E", "2")
			a.AddEnv("A", "x")
			a.AddEnv("A", "y")
		}),
			func(t *testing.T, s *specs.Spec) {
				want(t, s.Process.Env, []string{"PATH=/usr/bin", "A=y", "C=3", "E=2"})
			}},
		{"mounts", adjust(func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/data/sub", Type: "bind", Source: "/srv/sub", Options: []string{"rbind", "ro"}})
			a.AddMount(&api.Mount{Destination: "/data", Type: "bind", Source: "/srv/other", Options: []string{"rbind"}})
			a.AddMount(&api.Mount{Destination: "/x", Type: "tmpfs", Source: "tmpfs"})
			a.RemoveMount("/dev/pts")
		}), func(t *testing.T, s *specs.Spec) {
			var dests []string
			for _, m := range s.Mounts {
				dests = append(dests, m.Destination+"<"+m.Source)
			}
			// replaced in place of nothing: appended, then ordered parents first
			want(t, dests, []string{"/proc<proc", "/dev<tmpfs", "/data</srv/other", "/x<tmpfs", "/data/sub</srv/sub"})
		}},
		{"rshared mount", adjust(func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/shared", Type: "bind", Source: "/mnt", Options: []string{"rbind", "rshared"}})
		}), func(t *testing.T, s *specs.Spec) { want(t, s.Linux.RootfsPropagation, "rshared") }},
		{"rslave mount", adjust(func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/slave", Type: "bind", Source: "/mnt", Options: []string{"rbind", "rslave"}})
		}), func(t *testing.T, s *specs.Spec) { want(t, s.Linux.RootfsPropagation, "rslave") }},
		{"hooks", adjust(func(a *api.ContainerAdjustment) {
			h := func(p string) []*api.Hook { return []*api.Hook{{Path: p, Args: []string{p, "x"}, Timeout: api.Int(5)}} }
			a.AddHooks(&api.Hooks{Prestart: h("/p"), CreateRuntime: h("/cr"), CreateContainer: h("/cc"), StartContainer: h("/sc"),
				Poststart: h("/ps"), Poststop: h("/pst")})
		}), func(t *testing.T, s *specs.Spec) {
			hk := s.Hooks
			//lint:ignore SA1019 the prestart hooks NRI sends are applied too
			prestart := hk.Prestart
			got := []string{prestart[0].Path, hk.CreateRuntime[0].Path, hk.CreateContainer[0].Path, hk.StartContainer[0].Path,
				hk.Poststart[0].Path, hk.Poststop[0].Path}
			want(t, got, []string{"/p", "/cr", "/cc", "/sc", "/ps", "/pst"})
			want(t, *hk.Poststop[0].Timeout, 5)
		}},
		{"rlimits", adjust(func(a *api.ContainerAdjustment) {
			a.AddRlimit("RLIMIT_NOFILE", 4096, 2048)
			a.AddRlimit("RLIMIT_NPROC", 100, 50)
		}), func(t *testing.T, s *specs.Spec) {
			want(t, s.Process.Rlimits, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 4096, Soft: 2048}, {Type: "RLIMIT_NPROC", Hard: 100, Soft: 50}})
		}},
		{"devices", adjust(func(a *api.ContainerAdjustment) {
			a.AddDevice(&api.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: api.FileMode(fs.FileMode(0o666)), Uid: api.UInt32(uint32(0))})
			a.RemoveDevice("/dev/null")
		}), func(t *testing.T, s *specs.Spec) {
			want(t, len(s.Linux.Devices), 1)
			d := s.Linux.Devices[0]
			want(t, []any{d.Path, d.Type, d.Major, d.Minor, *d.FileMode, *d.UID}, []any{"/dev/fuse", "c", int64(10), int64(229), fs.FileMode(0o666), uint32(0)})
			rules := s.Linux.Resources.Devices
			want(t, len(rules), 2) // deny-all stays, /dev/null's rule went, /dev/fuse's came
			want(t, []any{rules[1].Allow, rules[1].Type, *rules[1].Major, *rules[1].Minor, rules[1].Access}, []any{true, "c", int64(10), int64(229), "rw"})
		}},
		{"cpu", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxCPUShares(512)
			a.SetLinuxCPUQuota(50000)
			a.SetLinuxCPUPeriod(100000)
			a.SetLinuxCPURealtimeRuntime(1000)
			a.SetLinuxCPURealtimePeriod(2000)
			a.SetLinuxCPUSetCPUs("0-1")
			a.SetLinuxCPUSetMems("0")
		}), func(t *testing.T, s *specs.Spec) {
			c := s.Linux.Resources.CPU
			want(t, []any{*c.Shares, *c.Quota, *c.Period, *c.RealtimeRuntime, *c.RealtimePeriod, c.Cpus, c.Mems},
				[]any{uint64(512), int64(50000), uint64(100000), int64(1000), uint64(2000), "0-1", "0"})
		}},
		{"memory limit takes the swap limit along", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxMemoryLimit(200 << 20) }),
			func(t *testing.T, s *specs.Spec) {
				m := s.Linux.Resources.Memory
				want(t, []int64{*m.Limit, *m.Swap}, []int64{200 << 20, 200 << 20})
			}},
		{"memory", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxMemoryLimit(300 << 20)
			a.SetLinuxMemorySwap(400 << 20)
			a.SetLinuxMemoryReservation(50 << 20)
			a.SetLinuxMemorySwappiness(10)
			a.SetLinuxMemoryDisableOomKiller()
		}), func(t *testing.T, s *specs.Spec) {
			m := s.Linux.Resources.Memory
			want(t, []any{*m.Limit, *m.Swap, *m.Reservation, *m.Swappiness, *m.DisableOOMKiller}, []any{int64(300 << 20), int64(400 << 20), int64(50 << 20), uint64(10), true})
		}},
		{"hugepages, unified, pids, device rules", adjust(func(a *api.ContainerAdjustment) {
			a.AddLinuxHugepageLimit("2MB", 4<<20)
			a.AddLinuxHugepageLimit("1GB", 1<<30)
			a.AddLinuxUnified("memory.high", "1G")
			a.SetLinuxPidLimits(64)
			a.Linux.Resources.Devices = []*api.LinuxDeviceCgroup{{Allow: true, Type: "b", Major: api.Int64(int64(8)), Access: "r"}}
		}), func(t *testing.T, s *specs.Spec) {
			r := s.Linux.Resources
			want(t, r.HugepageLimits, []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}, {Pagesize: "1GB", Limit: 1 << 30}})
			want(t, r.Unified, map[string]string{"memory.high": "1G"})
			want(t, *r.Pids.Limit, int64(64))
			last := r.Devices[len(r.Devices)-1]
			want(t, []any{last.Allow, last.Type, *last.Major, last.Minor == nil, last.Access}, []any{true, "b", int64(8), true, "r"})
		}},
		{"cgroups path, oom score, I/O priority, scheduler", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxCgroupsPath("/custom/ctr1")
			a.SetLinuxOomScoreAdj(ptr(-500))
			a.SetLinuxIOPriority(&api.LinuxIOPriority{Class: api.IOPrioClass_IOPRIO_CLASS_BE, Priority: 3})
			a.SetLinuxScheduler(&api.LinuxScheduler{Policy: api.LinuxSchedulerPolicy_SCHED_BATCH, Nice: 5})
		}), func(t *testing.T, s *specs.Spec) {
			want(t, s.Linux.CgroupsPath, "/custom/ctr1")
			want(t, *s.Process.OOMScoreAdj, -500)
			want(t, *s.Process.IOPriority, specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 3})
			want(t, []any{s.Process.Scheduler.Policy, s.Process.Scheduler.Nice}, []any{specs.SchedBatch, int32(5)})
		}},
		{"I/O priority class none clears it", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxIOPriority(&api.LinuxIOPriority{Class: api.IOPrioClass_IOPRIO_CLASS_NONE})
		}), func(t *testing.T, s *specs.Spec) { want(t, s.Process.IOPriority == nil, true) }},
		{"seccomp", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxSeccompPolicy(&api.LinuxSeccomp{DefaultAction: "SCMP_ACT_ERRNO", DefaultErrno: api.UInt32(uint32(1)), Architectures: []string{"SCMP_ARCH_X86_64"},
				Flags: []string{"SECCOMP_FILTER_FLAG_LOG"}, ListenerPath: "/run/agent.sock",
				Syscalls: []*api.LinuxSyscall{{Names: []string{"read", "write"}, Action: "SCMP_ACT_ALLOW"}}})
		}), func(t *testing.T, s *specs.Spec) {
			sc := s.Linux.Seccomp
			want(t, []any{sc.DefaultAction, *sc.DefaultErrnoRet, sc.Architectures[0], sc.Flags[0], sc.ListenerPath, sc.Syscalls[0].Names, sc.Syscalls[0].Action},
				[]any{specs.ActErrno, uint(1), specs.ArchX86_64, specs.LinuxSeccompFlagLog, "/run/agent.sock", []string{"read", "write"}, specs.ActAllow})
		}},
		{"namespaces", adjust(func(a *api.ContainerAdjustment) {
			a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "network", Path: "/run/other"})
			a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "uts"})
			a.RemoveNamespace(&api.LinuxNamespace{Type: "ipc"})
		}), func(t *testing.T, s *specs.Spec) {
			want(t, s.Linux.Namespaces, []specs.LinuxNamespace{{Type: "pid"}, {Type: "network", Path: "/run/other"}, {Type: "uts"}})
		}},
		{"sysctl", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxSysctl("net.ipv4.ip_forward", "1")
			a.Linux.Sysctl[api.MarkForRemoval("kernel.msgmax")] = ""
			a.SetLinuxSysctl("kernel.shmmax", "1000")
		}), func(t *testing.T, s *specs.Spec) {
			want(t, s.Linux.Sysctl, map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"})
		}},
		{"net devices", adjust(func(a *api.ContainerAdjustment) {
			a.AddLinuxNetDevice("eth9", &api.LinuxNetDevice{Name: "net1"})
			a.RemoveLinuxNetDevice("eth7")
		}), func(t *testing.T, s *specs.Spec) {
			want(t, s.Linux.NetDevices, map[string]specs.LinuxNetDevice{"eth9": {Name: "net1"}})
		}},
		{"rdt", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxRDTClosID("gold")
			a.SetLinuxRDTSchemata([]string{"L3:0=ff"})
			a.SetLinuxRDTEnableMonitoring(true)
		}), func(t *testing.T, s *specs.Spec) {
			want(t, *s.Linux.IntelRdt, specs.LinuxIntelRdt{ClosID: "gold", Schemata: []string{"L3:0=ff"}, EnableMonitoring: true})
		}},
		{"rdt removed", adjust(func(a *api.ContainerAdjustment) { a.RemoveLinuxRDT() }),
			func(t *testing.T, s *specs.Spec) { want(t, s.Linux.IntelRdt == nil, true) }},
		{"memory policy", adjust(func(a *api.ContainerAdjustment) {
			a.SetLinuxMemoryPolicy(api.MpolMode_MPOL_INTERLEAVE, "0-1", api.MpolFlag_MPOL_F_STATIC_NODES)
		}), func(t *testing.T, s *specs.Spec) {
			want(t, *s.Linux.MemoryPolicy, specs.LinuxMemoryPolicy{Mode: specs.MpolInterleave, Nodes: "0-1", Flags: []specs.MemoryPolicyFlagType{specs.MpolFStaticNodes}})
		}},
		{"empty block I/O and RDT classes", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass(""); a.SetLinuxRDTClass("") }),
			func(t *testing.T, s *specs.Spec) { want(t, s, baseSpec()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseSpec()
			if err := ApplyAdjustment(s, tt.adj); err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestApplyAdjustmentRefuses(t *testing.T) {
	tests := []struct {
		name  string
		adj   *api.ContainerAdjustment
		kind  error
		field string
	}{
		{"CDI devices", adjust(func(a *api.ContainerAdjustment) { a.AddCDIDevice(&api.CDIDevice{Name: "vendor.com/gpu=0"}) }),
			errdefs.ErrNotImplemented, "CDI_devices (vendor.com/gpu=0)"},
		{"relabel", adjust(func(a *api.ContainerAdjustment) {
			a.AddMount(&api.Mount{Destination: "/m", Type: "bind", Source: "/srv", Options: []string{"rbind", api.SELinuxRelabel}})
		}), errdefs.ErrNotImplemented, "mounts[/m].options"},
		{"kernel memory", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxMemoryKernel(1 << 20) }), errdefs.ErrNotImplemented, "linux.resources.memory.kernel"},
		{"kernel TCP memory", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxMemoryKernelTCP(1 << 20) }), errdefs.ErrNotImplemented, "linux.resources.memory.kernel_tcp"},
		{"use hierarchy", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxMemoryUseHierarchy() }), errdefs.ErrNotImplemented, "linux.resources.memory.use_hierarchy"},
		{"block I/O class", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxBlockIOClass("slow") }), errdefs.ErrNotImplemented, "linux.resources.blockio_class (slow)"},
		{"RDT class", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxRDTClass("gold") }), errdefs.ErrNotImplemented, "linux.resources.rdt_class (gold)"},
		{"env name", adjust(func(a *api.ContainerAdjustment) { a.AddEnv("A=B", "x") }), errdefs.ErrInvalidArgument, "env"},
		{"relative mount", adjust(func(a *api.ContainerAdjustment) { a.AddMount(&api.Mount{Destination: "data", Source: "/srv"}) }),
			errdefs.ErrInvalidArgument, "mounts[data]"},
		{"relative hook", adjust(func(a *api.ContainerAdjustment) { a.AddHooks(&api.Hooks{Poststop: []*api.Hook{{Path: "hook"}}}) }),
			errdefs.ErrInvalidArgument, "hooks.poststop[0].path"},
		{"rlimit type", adjust(func(a *api.ContainerAdjustment) { a.AddRlimit("RLIMIT_BOGUS", 1, 1) }), errdefs.ErrInvalidArgument, "rlimits[RLIMIT_BOGUS]"},
		{"rlimit soft above hard", adjust(func(a *api.ContainerAdjustment) { a.AddRlimit("RLIMIT_NOFILE", 1, 2) }), errdefs.ErrInvalidArgument, "rlimits[RLIMIT_NOFILE]"},
		{"device type", adjust(func(a *api.ContainerAdjustment) { a.AddDevice(&api.LinuxDevice{Path: "/dev/x", Type: "z"}) }),
			errdefs.ErrInvalidArgument, "linux.devices[/dev/x].type"},
		{"oom score", adjust(func(a *api.ContainerAdjustment) { a.SetLinuxOomScoreAdj(ptr(1001)) }), errdefs.ErrInvalidArgument, "linux.oom_score_adj"},
		{"namespace type", adjust(func(a *api.ContainerAdjustment) { a.AddOrReplaceNamespace(&api.LinuxNamespace{Type: "net"}) }),
			errdefs.ErrInvalidArgument, "linux.namespaces"},
		{"device rule access", adjust(func(a *api.ContainerAdjustment) {
			a.Linux.Resources.Devices = []*api.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "rwx"}}
		}), errdefs.ErrInvalidArgument, "linux.resources.devices[0].access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Valid changes beside the refused one are not applied either.
			tt.adj.AddEnv("VALID", "1")
			tt.adj.SetArgs([]string{"/bin/x"})
			s := baseSpec()
			err := ApplyAdjustment(s, tt.adj)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %v, want %v naming %q", err, tt.kind, tt.field)
			}
			if !reflect.DeepEqual(s, baseSpec()) {
				t.Fatalf("a refused adjustment changed the spec:\n%+v", s)
			}
		})
	}
}

func TestApplyAdjustmentFillsEmptySpec(t *testing.T) {
	s := &specs.Spec{}
	adj := adjust(func(a *api.ContainerAdjustment) {
		a.AddEnv("A", "1")
		a.SetLinuxMemoryLimit(1 << 20)
		a.AddDevice(&api.LinuxDevice{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229})
		a.AddAnnotation("a", "b")
	})
	if err := ApplyAdjustment(s, adj); err != nil {
		t.Fatal(err)
	}
	want(t, []any{s.Process.Env, *s.Linux.Resources.Memory.Limit, s.Linux.Devices[0].Path, s.Annotations["a"]}, []any{[]string{"A=1"}, int64(1 << 20), "/dev/fuse", "b"})
	if err := ApplyAdjustment(nil, adj); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("nil spec: %v", err)
	}
}

func want(t *testing.T, got, wanted any) {
	t.Helper()
	if !reflect.DeepEqual(got, wanted) {
		t.Fatalf("got %#v\nwant %#v", got, wanted)
	}
}
