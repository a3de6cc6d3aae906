package cgroups

import "os"

// systemdRunDir exists exactly when systemd is the init system (see
// sd_booted(3)).
const systemdRunDir = "/run/systemd/system"

// SystemdRunning reports whether systemd is PID 1, which the systemd cgroup
// driver needs.
func SystemdRunning() bool {
	fi, err := os.Lstat(systemdRunDir)
	return err == nil && fi.IsDir()
}
