package container

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/selinux/go-selinux"
	"golang.org/x/sys/unix"
)

// HostCapabilities lists the capabilities in berthd's own bounding set, as
// "CAP_*" names: the most a container may get.
func HostCapabilities() ([]string, error) {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return nil, err
	}
	if err := caps.Load(); err != nil {
		return nil, err
	}
	var out []string
	for _, c := range capability.ListKnown() {
		if caps.Get(capability.BOUNDING, c) {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out, nil
}

// skipDevDirs are the /dev dirs whose devices a container gets its own of.
var skipDevDirs = map[string]bool{"pts": true, "shm": true, "fd": true, "mqueue": true}

// HostDevices lists the host's device nodes under /dev, for privileged
// containers.
func HostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a device that vanished meanwhile
		}
		if d.IsDir() {
			if p != "/dev" && skipDevDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 || p == "/dev/console" {
			return nil
		}
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return nil
		}
		out = append(out, device(p, &st))
		return nil
	})
	return out, err
}

func device(path string, st *unix.Stat_t) specs.LinuxDevice {
	typ := "c"
	if st.Mode&syscall.S_IFMT == syscall.S_IFBLK {
		typ = "b"
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{Path: path, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid}
}

// RecursiveReadOnlySupported says whether the kernel makes mounts read-only
// recursively (mount_setattr, Linux 5.12), which "rro" mounts need: the call
// exists when it refuses a bad descriptor rather than being unknown.
func RecursiveReadOnlySupported() bool {
	err := unix.MountSetattr(-1, "", 0, &unix.MountAttr{})
	return err != unix.ENOSYS
}

// AppArmorEnabled says whether the host runs AppArmor.
func AppArmorEnabled() bool {
	data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(data), "Y")
}

// AppArmorProfiles lists the AppArmor profiles loaded on the host (none
// where AppArmor is off).
func AppArmorProfiles() map[string]bool {
	data, err := os.ReadFile("/sys/kernel/security/apparmor/profiles")
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		// "name (enforce)"
		if name, _, ok := strings.Cut(line, " ("); ok {
			out[name] = true
		}
	}
	return out
}

// LoadAppArmorProfile compiles an AppArmor profile (its text) with
// apparmor_parser and loads it into the kernel, replacing a loaded profile of
// the same name.
func LoadAppArmorProfile(text string) error {
	cmd := exec.Command("apparmor_parser", "--replace", "--skip-cache")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load AppArmor profile: apparmor_parser: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// SELinuxEnabled says whether the host runs SELinux, as go-selinux (and the
// peers, and libcontainer) see it: selinuxfs mounted and a policy loaded. Not
// by a stat of a selinuxfs file: a container engine's domain may not look
// into selinuxfs (the reference policy's may only find its mount), and the
// denial is not even logged.
func SELinuxEnabled() bool {
	return selinux.GetEnabled()
}
