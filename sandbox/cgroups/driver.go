package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// systemdRunDir exists exactly when systemd is the init system (see
// sd_booted(3)).
const systemdRunDir = "/run/systemd/system"

// SystemdRunning reports whether systemd is PID 1, which the systemd cgroup
// driver needs.
func SystemdRunning() bool {
	fi, err := os.Lstat(systemdRunDir)
	return err == nil && fi.IsDir()
}

// HugetlbSupported says whether the host's cgroups can limit huge pages: a
// v1 hugetlb hierarchy, or hugetlb among the v2 root's controllers.
func HugetlbSupported() bool { return hugetlbSupported(mountRoot) }

func hugetlbSupported(root string) bool {
	if data, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		return slices.Contains(strings.Fields(string(data)), "hugetlb")
	}
	_, err := os.Stat(filepath.Join(root, "hugetlb"))
	return err == nil
}
