package helper

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Every process of a container, exec'd ones too, carries its AppArmor profile
// and SELinux label: libcontainer confines processes, not containers.
func TestBaseProcessKeepsTheLSMConfinement(t *testing.T) {
	sp := &specs.Process{ApparmorProfile: "berth-default", SelinuxLabel: "system_u:system_r:container_t:s0:c1,c2",
		User: specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}}, Env: []string{"A=b"}, Cwd: "/w"}
	p := BaseProcess(sp, []string{"true"})
	if p.AppArmorProfile != sp.ApparmorProfile || p.Label != sp.SelinuxLabel || p.UID != 1 || p.GID != 2 || len(p.AdditionalGroups) != 1 ||
		p.Cwd != "/w" || p.Args[0] != "true" {
		t.Fatalf("process = %+v", p)
	}
}

func TestCappedBuffer(t *testing.T) {
	b := &cappedBuffer{limit: 5}
	for _, s := range []string{"abc", "defg", "hij"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if string(b.Bytes()) != "abcde" {
		t.Fatalf("kept %q", b.Bytes())
	}
}
