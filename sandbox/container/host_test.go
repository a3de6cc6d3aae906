package container

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mount_setattr came with Linux 5.12.
func TestRecursiveReadOnlySupported(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	f := strings.SplitN(unix.ByteSliceToString(u.Release[:]), ".", 3)
	major, _ := strconv.Atoi(f[0])
	minor, _ := strconv.Atoi(f[1])
	want := major > 5 || major == 5 && minor >= 12
	if got := RecursiveReadOnlySupported(); got != want {
		t.Fatalf("supported = %v on %s", got, unix.ByteSliceToString(u.Release[:]))
	}
}
