package nri

import (
	"time"

	"github.com/berth-cri/berth/cri/config"
)

// Config is what the host runs with; FromConfig maps berth.toml's [nri]
// table onto it.
type Config struct {
	// Enable runs the host. Without it, New makes a Host whose every method
	// is a no-op: no plugin is started or accepted, no event goes out.
	Enable bool
	// SocketPath is the unix socket external plugins connect to. Start
	// refuses a path that another live process serves.
	SocketPath string
	// PluginPath holds pre-installed plugins that Start launches
	// (executables named <idx>-<name>); a missing directory means none.
	PluginPath string
	// PluginConfigPath holds their configuration (<idx>-<name>.conf or
	// <name>.conf).
	PluginConfigPath string
	// RegistrationTimeout bounds a plugin's registration; RequestTimeout a
	// plugin's handling of one event. Both are process-wide in the nri
	// library: the last Host made sets them for every Host.
	RegistrationTimeout time.Duration
	RequestTimeout      time.Duration
}

// FromConfig is the host's configuration from berth.toml's [nri] table.
func FromConfig(c config.NRI) Config {
	return Config{
		Enable:              c.Enable,
		SocketPath:          c.SocketPath,
		PluginPath:          c.PluginPath,
		PluginConfigPath:    c.PluginConfigPath,
		RegistrationTimeout: time.Duration(c.PluginRegistrationTimeout),
		RequestTimeout:      time.Duration(c.PluginRequestTimeout),
	}
}
