package helper

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"

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

// Requests are checked before any container is touched; a container that is
// not there is NotFound, and already deleted for delete.
func TestRequests(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		op, req string
		ok      func(error) bool
	}{
		{"update", `{`, errdefs.IsInvalidArgument},
		{"update", `{"ID":"c"}`, errdefs.IsInvalidArgument},
		{"bogus", `{"Root":"` + root + `","ID":"c"}`, errdefs.IsInvalidArgument},
		{"create", `{"Root":"` + root + `","ID":"c"}`, errdefs.IsInvalidArgument},
		{"exec", `{"Root":"` + root + `","ID":"c"}`, errdefs.IsInvalidArgument},
		{"update", `{"Root":"` + root + `","ID":"c"}`, errdefs.IsNotFound},
		{"signal", `{"Root":"` + root + `","ID":"c","Signal":9}`, errdefs.IsNotFound},
		{"delete", `{"Root":"` + root + `","ID":"c"}`, func(err error) bool { return err == nil }},
	} {
		if _, err := run(c.op, strings.NewReader(c.req)); !c.ok(err) {
			t.Errorf("%s %s = %v", c.op, c.req, err)
		}
	}
}
