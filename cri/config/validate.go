package config

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
)

// maxSocketPath is the longest unix socket path the kernel accepts
// (sizeof(sun_path) - 1).
const maxSocketPath = 107

// Validate checks every key and returns all problems found, each naming where
// the value came from, the key, the value and what is wrong.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, value any, why string) {
		errs = append(errs, fmt.Errorf("%s: key %q = %q: %s", c.Source(key), key, fmt.Sprint(value), why))
	}
	for _, kv := range [][2]string{{"root", c.Root}, {"state", c.State}, {"listen", c.Listen}, {"cni.conf_dir", c.CNI.ConfDir}} {
		if why := checkAbsPath(kv[1]); why != "" {
			bad(kv[0], kv[1], why)
		}
	}
	if len(c.Listen) > maxSocketPath {
		bad("listen", c.Listen, fmt.Sprintf("a unix socket path must be at most %d bytes", maxSocketPath))
	}
	if _, err := logrus.ParseLevel(c.LogLevel); err != nil {
		bad("log_level", c.LogLevel, "must be one of trace, debug, info, warn, error, fatal, panic")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", c.LogFormat, `must be "text" or "json"`)
	}
	if c.CgroupDriver != CgroupfsDriver && c.CgroupDriver != SystemdDriver {
		bad("cgroup_driver", c.CgroupDriver, `must be "cgroupfs" or "systemd"`)
	}
	c.validateCNI(bad)
	return errors.Join(errs...)
}

func (c *Config) validateCNI(bad func(key string, value any, why string)) {
	if len(c.CNI.BinDirs) == 0 {
		bad("cni.bin_dirs", c.CNI.BinDirs, "needs at least one directory")
	}
	for _, d := range c.CNI.BinDirs {
		if why := checkAbsPath(d); why != "" {
			bad("cni.bin_dirs", d, why)
		}
	}
	if why := checkInterfaceName(c.CNI.DefaultBridge); why != "" {
		bad("cni.default_bridge", c.CNI.DefaultBridge, why)
	}
	if _, _, err := net.ParseCIDR(c.CNI.DefaultSubnet); err != nil {
		bad("cni.default_subnet", c.CNI.DefaultSubnet, "must be a CIDR such as 10.88.0.0/16")
	}
}

func checkAbsPath(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case !filepath.IsAbs(p):
		return "must be an absolute path"
	case filepath.Clean(p) != p:
		return fmt.Sprintf("must be a clean path (did you mean %q?)", filepath.Clean(p))
	case strings.ContainsRune(p, 0):
		return "must not contain NUL"
	}
	return ""
}

// checkInterfaceName applies the kernel's rules for a network device name.
func checkInterfaceName(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > 15:
		return "a network interface name is at most 15 bytes"
	case name == "." || name == "..":
		return "is not a valid interface name"
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return "must not contain '/', ':' or whitespace"
	}
	return ""
}
