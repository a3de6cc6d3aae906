package spec

import (
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestProcessArgs(t *testing.T) {
	tests := []struct {
		name                           string
		command, args, entrypoint, cmd []string
		want                           []string
	}{
		{"image only", nil, nil, []string{"/ep"}, []string{"c1", "c2"}, []string{"/ep", "c1", "c2"}},
		{"image cmd only", nil, nil, nil, []string{"sh"}, []string{"sh"}},
		{"cri args replace image cmd", nil, []string{"a"}, []string{"/ep"}, []string{"c"}, []string{"/ep", "a"}},
		{"cri command replaces both", []string{"/bin/x"}, nil, []string{"/ep"}, []string{"c"}, []string{"/bin/x"}},
		{"cri command and args", []string{"/bin/x"}, []string{"-v"}, []string{"/ep"}, []string{"c"}, []string{"/bin/x", "-v"}},
		{"empty entrypoint means none", nil, nil, []string{""}, []string{"sh"}, []string{"sh"}},
		{"args without entrypoint", nil, []string{"echo", "hi"}, nil, []string{"sh"}, []string{"echo", "hi"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProcessArgs(tt.command, tt.args, tt.entrypoint, tt.cmd)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ProcessArgs = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	if _, err := ProcessArgs(nil, nil, []string{""}, nil); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("no command at all: %v", err)
	}
}

func TestMergeEnv(t *testing.T) {
	got := MergeEnv([]string{"PATH=/bin", "HOME=/root", "EMPTY="},
		[]KeyValue{{"HOME", "/home/x"}, {"NEW", "1"}, {"NEW", "2"}, {"PATH", "/usr/bin:/bin"}})
	want := []string{"PATH=/usr/bin:/bin", "HOME=/home/x", "EMPTY=", "NEW=2"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MergeEnv = %q, want %q", got, want)
	}
}

const passwd = `root:x:0:0:root:/root:/bin/sh
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
default-user:x:1000:1000::/home/default-user:/bin/sh
broken line
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`

const group = `root:x:0:
www-data:x:33:
users:x:100:www-data
default-user:x:1000:
group-defined-in-image:x:50000:default-user
`

func i64(v int64) *int64 { return &v }

func TestResolveUser(t *testing.T) {
	tests := []struct {
		name string
		spec UserSpec
		want User
	}{
		{"default root", UserSpec{}, User{0, 0, "root", []uint32{0}}},
		{"image uid", UserSpec{ImageUser: "1002"}, User{1002, 0, "", []uint32{0}}},
		{"image name", UserSpec{ImageUser: "www-data"}, User{33, 33, "www-data", []uint32{33, 100}}},
		{"image uid:group", UserSpec{ImageUser: "1003:users"}, User{1003, 100, "", []uint32{100}}},
		{"image name:group", UserSpec{ImageUser: "www-data:users"}, User{33, 100, "www-data", []uint32{100}}},
		{"image uid:gid", UserSpec{ImageUser: "5:6"}, User{5, 6, "", []uint32{6}}},
		{"predefined group merged", UserSpec{ImageUser: "1000"}, User{1000, 1000, "default-user", []uint32{1000, 50000}}},
		{"predefined group strict", UserSpec{ImageUser: "1000", StrictGroups: true}, User{1000, 1000, "default-user", []uint32{1000}}},
		{"RunAsUser beats image", UserSpec{RunAsUser: i64(33), ImageUser: "1000:users"}, User{33, 33, "www-data", []uint32{33, 100}}},
		{"RunAsUser with group", UserSpec{RunAsUser: i64(1000), RunAsGroup: i64(3000)}, User{1000, 3000, "default-user", []uint32{3000, 50000}}},
		{"RunAsUsername", UserSpec{RunAsUsername: "nobody"}, User{65534, 65534, "nobody", []uint32{65534}}},
		{"supplemental groups", UserSpec{RunAsUser: i64(0), SupplementalGroups: []int64{1234, 0, 1234}}, User{0, 0, "root", []uint32{0, 1234}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveUser(tt.spec, []byte(passwd), []byte(group))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ResolveUser = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestResolveUserErrors(t *testing.T) {
	for name, spec := range map[string]UserSpec{
		"group without user": {RunAsGroup: i64(5)},
		"unknown name":       {ImageUser: "ghost"},
		"unknown group":      {ImageUser: "1000:ghosts"},
		"negative uid":       {RunAsUser: i64(-1)},
		"huge gid":           {RunAsUser: i64(1), RunAsGroup: i64(1 << 40)},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ResolveUser(spec, []byte(passwd), []byte(group)); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("err = %v, want InvalidArgument", err)
			}
		})
	}
	// No passwd at all: numeric ids still work, names do not.
	if u, err := ResolveUser(UserSpec{ImageUser: "7:8"}, nil, nil); err != nil || u.UID != 7 || u.GID != 8 {
		t.Fatalf("numeric without passwd = %+v, %v", u, err)
	}
	if _, err := ResolveUser(UserSpec{ImageUser: "www-data"}, nil, nil); err == nil || !strings.Contains(err.Error(), "www-data") {
		t.Fatalf("name without passwd = %v", err)
	}
}
