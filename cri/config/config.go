package config

import (
	"encoding/json"
)

// Config is the whole of berth.toml. Every field has a default (see Default) and
// a line in the commented default file (see DefaultTOML).
type Config struct {
	// Root holds persistent state: images, pod and container records.
	Root string `toml:"root" json:"root"`
	// State holds volatile state: sockets, pinned namespaces, per-pod files.
	State string `toml:"state" json:"state"`
	// Listen is the path of the CRI gRPC unix socket.
	Listen string `toml:"listen" json:"listen"`
	// LogLevel is a logrus level name.
	LogLevel string `toml:"log_level" json:"log_level"`
	// LogFormat is "text" or "json".
	LogFormat string `toml:"log_format" json:"log_format"`
	// CgroupDriver is "cgroupfs" or "systemd"; the kubelet must use the same.
	CgroupDriver string `toml:"cgroup_driver" json:"cgroup_driver"`
	// CNI configures pod networking.
	CNI CNI `toml:"cni" json:"cni"`

	// sources maps a dotted key to where its value came from (a file or a
	// flag), so that validation errors can name it.
	sources map[string]string
}

// CNI is the [cni] table.
type CNI struct {
	ConfDir        string   `toml:"conf_dir" json:"conf_dir"`
	BinDirs        []string `toml:"bin_dirs" json:"bin_dirs"`
	DefaultNetwork bool     `toml:"default_network" json:"default_network"`
	DefaultBridge  string   `toml:"default_bridge" json:"default_bridge"`
	DefaultSubnet  string   `toml:"default_subnet" json:"default_subnet"`
}

// Cgroup drivers.
const (
	CgroupfsDriver = "cgroupfs"
	SystemdDriver  = "systemd"
)

// Default paths.
const (
	DefaultConfigFile = "/etc/berth/berth.toml"
	DropInDirName     = "berth.d"
)

// Default returns the configuration berthd runs with when no file says otherwise.
func Default() *Config {
	return &Config{
		Root:         "/var/lib/berth",
		State:        "/run/berth",
		Listen:       "/run/berth/berth.sock",
		LogLevel:     "info",
		LogFormat:    "text",
		CgroupDriver: CgroupfsDriver,
		CNI: CNI{
			ConfDir:        "/etc/cni/net.d",
			BinDirs:        []string{"/opt/cni/bin", "/usr/lib/cni"},
			DefaultNetwork: true,
			DefaultBridge:  "berth0",
			DefaultSubnet:  "10.88.0.0/16",
		},
	}
}

// Set records that key was set by source (e.g. "flag --root"), after the
// caller has assigned the field. Validation errors then name that source.
func (c *Config) Set(key, source string) {
	if c.sources == nil {
		c.sources = map[string]string{}
	}
	c.sources[key] = source
}

// Source says where key got its value: a file, a flag, or "default".
func (c *Config) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return "default"
}

// JSON renders the effective configuration, for Status(verbose).
func (c *Config) JSON() string {
	b, err := json.Marshal(c)
	if err != nil {
		// Config holds only strings, bools and string slices.
		panic(err)
	}
	return string(b)
}
