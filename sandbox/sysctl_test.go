package sandbox

import (
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidateSysctls(t *testing.T) {
	own := Spec{NetworkMode: ModePod, IPCMode: ModePod}
	hostNet := Spec{NetworkMode: ModeNode, IPCMode: ModePod}
	hostIPC := Spec{NetworkMode: ModePod, IPCMode: ModeNode}
	for _, tc := range []struct {
		name, value string
		spec        Spec
		ok          bool
	}{
		{"kernel.shm_rmid_forced", "1", own, true},
		{"net.ipv4.ip_local_port_range", "1024\t65000", own, true},
		{"net.ipv4.conf.all.rp_filter", "1", own, true},
		{"net/ipv4/conf/eth0.100/rp_filter", "1", own, true},
		{"fs.mqueue.msg_max", "100", own, true},
		{"kernel.msgmax", "8192", own, true},
		{"kernel.sem", "250 32000 32 128", own, true},
		{"net.ipv4.ip_forward", "1", hostNet, false},
		{"kernel.shmmax", "1", hostIPC, false},
		{"net.core.somaxconn", "1024", hostIPC, true},
		{"kernel.core_pattern", "|/tmp/x", own, false},
		{"kernel.hostname", "x", own, false},
		{"vm.overcommit_memory", "1", own, false},
		{"net/../../kernel/core_pattern", "x", own, false},
		{"net/ipv4/../../../kernel/core_pattern", "x", own, false},
		{"net.ipv4..ip_forward", "1", own, false},
		{"Net.ipv4.ip_forward", "1", own, false},
		{"net.ipv4.ip_forward", "1\nkernel.core_pattern=|/x", own, false},
		{"net.ipv4.ip_forward", "1\x00", own, false},
	} {
		err := ValidateSysctls(map[string]string{tc.name: tc.value}, tc.spec)
		if tc.ok && err != nil {
			t.Errorf("%s=%q: %v", tc.name, tc.value, err)
		}
		if !tc.ok && !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s=%q: %v, want InvalidArgument", tc.name, tc.value, err)
		}
	}
	if p := sysctlPath("net/ipv4/conf/eth0.100/rp_filter"); p != "/proc/sys/net/ipv4/conf/eth0.100/rp_filter" {
		t.Errorf("slashed path %s", p)
	}
	if p := sysctlPath("fs.mqueue.msg_max"); p != "/proc/sys/fs/mqueue/msg_max" {
		t.Errorf("dotted path %s", p)
	}
}
