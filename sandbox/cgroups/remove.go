package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// mountRoot is where cgroup hierarchies are mounted.
const mountRoot = "/sys/fs/cgroup"

// RemoveEmpty removes the cgroup at path (e.g. "/berth/<pod>") from every
// hierarchy, v1 controllers and the v2 unified tree alike, and then its
// parents up to but not including top, as long as they are empty. A cgroup
// that still has processes or children stays: the kernel refuses to remove it.
func RemoveEmpty(path, top string) error {
	var errs []error
	for _, root := range hierarchiesUnder(mountRoot) {
		for p := filepath.Clean(path); p != "/" && p != filepath.Clean(top) && strings.HasPrefix(p, filepath.Clean(top)+"/"); p = filepath.Dir(p) {
			err := os.Remove(filepath.Join(root, p))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// hierarchiesUnder lists the cgroup hierarchies mounted under root: each v1
// controller dir, or root itself on v2.
func hierarchiesUnder(root string) []string {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return []string{root}
	}
	entries, _ := os.ReadDir(root)
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(root, e.Name()))
		}
	}
	return out
}
