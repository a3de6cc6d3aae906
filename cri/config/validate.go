package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// handlerName is what Kubernetes takes as a RuntimeClass handler: a
// lowercase RFC 1123 label.
var handlerName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

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
	if c.LogFormat != "text" && c.LogFormat != "json" && c.LogFormat != "journald" {
		bad("log_format", c.LogFormat, `must be "text", "json" or "journald"`)
	}
	if c.CgroupDriver != CgroupfsDriver && c.CgroupDriver != SystemdDriver {
		bad("cgroup_driver", c.CgroupDriver, `must be "cgroupfs" or "systemd"`)
	}
	c.validateCNI(bad)
	c.validateImage(bad)
	c.validateNRI(bad)
	for name := range c.RuntimeHandlers {
		if !handlerName.MatchString(name) {
			bad(fmt.Sprintf("runtime_handlers.%q", name), name, "must be a lowercase RFC 1123 label of at most 63 characters, as a RuntimeClass handler is")
		}
	}
	if net.ParseIP(c.Streaming.Address) == nil {
		bad("streaming.address", c.Streaming.Address, "must be an IP address such as 127.0.0.1")
	}
	if (c.Streaming.TLSCertFile == "") != (c.Streaming.TLSKeyFile == "") {
		bad("streaming.tls_cert_file", c.Streaming.TLSCertFile, "needs tls_key_file too (both or neither)")
	}
	for k, p := range map[string]string{"streaming.tls_cert_file": c.Streaming.TLSCertFile, "streaming.tls_key_file": c.Streaming.TLSKeyFile} {
		if p != "" && !filepath.IsAbs(p) {
			bad(k, p, "must be an absolute path")
		}
	}
	if a := c.Metrics.Address; a != "" {
		host, port, err := net.SplitHostPort(a)
		if _, perr := strconv.ParseUint(port, 10, 16); err != nil || net.ParseIP(host) == nil || perr != nil {
			bad("metrics.address", a, `must be "ip:port", such as "127.0.0.1:9813", or empty`)
		}
	}
	if p, err := strconv.ParseUint(c.Streaming.Port, 10, 16); err != nil || p > 65535 {
		bad("streaming.port", c.Streaming.Port, "must be a port number, or 0 for a free one")
	}
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
	if _, _, err := net.ParseCIDR(c.CNI.DefaultSubnet); err != nil && c.CNI.DefaultSubnet != "" {
		bad("cni.default_subnet", c.CNI.DefaultSubnet, `must be a CIDR such as 10.88.0.0/16, or "" for the kubelet's pod CIDR`)
	}
	if c.CNI.PluginTimeout <= 0 {
		bad("cni.plugin_timeout", time.Duration(c.CNI.PluginTimeout), "must be positive, such as \"2m\"")
	}
}

// validateNRI checks the [nri] keys even when enable = false, so that a typo
// shows before the day NRI is turned on.
func (c *Config) validateNRI(bad func(key string, value any, why string)) {
	n := c.NRI
	for _, kv := range [][2]string{{"nri.socket_path", n.SocketPath}, {"nri.plugin_path", n.PluginPath}, {"nri.plugin_config_path", n.PluginConfigPath}} {
		if why := checkAbsPath(kv[1]); why != "" {
			bad(kv[0], kv[1], why)
		}
	}
	if len(n.SocketPath) > maxSocketPath {
		bad("nri.socket_path", n.SocketPath, fmt.Sprintf("a unix socket path must be at most %d bytes", maxSocketPath))
	}
	if n.SocketPath == c.Listen {
		bad("nri.socket_path", n.SocketPath, "must differ from listen, the CRI socket")
	}
	if n.PluginRegistrationTimeout <= 0 {
		bad("nri.plugin_registration_timeout", time.Duration(n.PluginRegistrationTimeout), "must be positive, such as \"5s\"")
	}
	if n.PluginRequestTimeout <= 0 {
		bad("nri.plugin_request_timeout", time.Duration(n.PluginRequestTimeout), "must be positive, such as \"2s\"")
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

func (c *Config) validateImage(bad func(key string, value any, why string)) {
	if c.Image.MaxConcurrentDownloads < 1 {
		bad("image.max_concurrent_downloads", c.Image.MaxConcurrentDownloads, "must be at least 1")
	}
	if n := c.Image.BlobFetchConnections; n < 1 || n > 16 {
		bad("image.blob_fetch_connections", n, "must be between 1 and 16")
	}
	if n := c.Image.BlobFetchChunkSize; n < 1<<20 || n > 1<<30 {
		bad("image.blob_fetch_chunk_size", n, "must be between 1 MiB (1048576) and 1 GiB (1073741824)")
	}
	if c.Image.PullProgressTimeout < 0 {
		bad("image.pull_progress_timeout", time.Duration(c.Image.PullProgressTimeout), "must not be negative (0s disables it)")
	}
	if c.Image.PullMinRate < 0 {
		bad("image.pull_min_rate", c.Image.PullMinRate, "must not be negative (0 disables it)")
	}
	if p := c.Image.RegistryConfigPath; p != "" {
		if why := checkAbsPath(p); why != "" {
			bad("image.registry_config_path", p, why)
		}
	}
	for host, r := range c.Registries {
		key := fmt.Sprintf("registries.%q", host)
		if why := checkRegistryHost(host); why != "" {
			bad(key, host, why)
		}
		for _, m := range r.Mirrors {
			if why := checkMirrorURL(m); why != "" {
				bad(key+".mirrors", m, why)
			}
		}
		if r.CAFile != "" {
			if why := checkAbsPath(r.CAFile); why != "" {
				bad(key+".ca_file", r.CAFile, why)
			}
		}
		if r.MirrorsOnly && len(r.Mirrors) == 0 {
			bad(key+".mirrors_only", r.MirrorsOnly, "needs at least one mirror")
		}
	}
}

// checkRegistryHost accepts a host name or IP with an optional port, as image
// references spell a registry.
func checkRegistryHost(host string) string {
	if host == "" || strings.ContainsAny(host, "/ \t@") {
		return "must be a registry host such as \"registry.k8s.io\" or \"127.0.0.1:5000\""
	}
	u, err := url.Parse("https://" + host)
	if err != nil || u.Host != host || u.Hostname() == "" {
		return "must be a registry host such as \"registry.k8s.io\" or \"127.0.0.1:5000\""
	}
	return ""
}

func checkMirrorURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http:// or https:// URL such as \"http://127.0.0.1:5000\""
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "must not have credentials, a query or a fragment"
	}
	return ""
}
