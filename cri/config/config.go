package config

import (
	"encoding/json"
	"fmt"
	"time"
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
	// LogFormat is "text", "json", or "journald" (native journal messages
	// with the log fields as journal fields; the unit file sets it).
	LogFormat string `toml:"log_format" json:"log_format"`
	// CgroupDriver is "cgroupfs" or "systemd"; the kubelet must use the same.
	CgroupDriver string `toml:"cgroup_driver" json:"cgroup_driver"`
	// CNI configures pod networking.
	CNI CNI `toml:"cni" json:"cni"`
	// Image configures pulls and the image store.
	Image Image `toml:"image" json:"image"`
	// Streaming configures the exec / attach / port-forward server.
	Streaming Streaming `toml:"streaming" json:"streaming"`
	// Metrics configures Berth's own Prometheus endpoint.
	Metrics Metrics `toml:"metrics" json:"metrics"`
	// NRI configures the Node Resource Interface host (cri/nri).
	NRI NRI `toml:"nri" json:"nri"`
	// Registries holds per-registry-host settings, keyed by host[:port].
	Registries map[string]Registry `toml:"registries" json:"registries,omitempty"`
	// RuntimeHandlers are the CRI runtime handlers besides the default one
	// (""), keyed by name: a pod names one through its RuntimeClass.
	RuntimeHandlers map[string]RuntimeHandler `toml:"runtime_handlers" json:"runtime_handlers,omitempty"`

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
	// DefaultSubnet is the default network's subnet; "" takes the node's
	// pod CIDR from the kubelet, else 10.88.0.0/16 (cni.FallbackSubnet).
	DefaultSubnet string `toml:"default_subnet" json:"default_subnet"`
	// PluginTimeout bounds each CNI operation (ADD, DEL, CHECK, STATUS, GC);
	// a plugin still running then is killed with what it started.
	PluginTimeout Duration `toml:"plugin_timeout" json:"plugin_timeout"`
}

// Image is the [image] table.
type Image struct {
	// MaxConcurrentDownloads bounds the layers one pull downloads at once.
	MaxConcurrentDownloads int `toml:"max_concurrent_downloads" json:"max_concurrent_downloads"`
	// BlobFetchConnections is how many connections fetch one large blob at
	// once, in ranges of BlobFetchChunkSize bytes (blobs of at least one
	// chunk per connection; smaller ones, and registries without ranges,
	// get one stream). 1 fetches every blob in one stream.
	BlobFetchConnections int `toml:"blob_fetch_connections" json:"blob_fetch_connections"`
	// BlobFetchChunkSize (bytes) is the size of those ranges.
	BlobFetchChunkSize int64 `toml:"blob_fetch_chunk_size" json:"blob_fetch_chunk_size"`
	// PullProgressTimeout cancels a pull whose bytes stall that long; "0s" disables it.
	PullProgressTimeout Duration `toml:"pull_progress_timeout" json:"pull_progress_timeout"`
	// PullMinRate (bytes/s) cancels a pull whose transfer rate over a window
	// of PullProgressTimeout stays below it; 0 disables it (so does a zero
	// PullProgressTimeout). It catches registries that trickle just enough
	// bytes never to stall.
	PullMinRate int64 `toml:"pull_min_rate" json:"pull_min_rate"`
	// PinnedImages are never removed by RemoveImage and are reported pinned.
	PinnedImages []string `toml:"pinned_images" json:"pinned_images"`
	// RegistryConfigPath is a containerd-style certs.d directory of <host>/hosts.toml.
	RegistryConfigPath string `toml:"registry_config_path" json:"registry_config_path"`
}

// Streaming is the [streaming] table: where the server the kubelet proxies
// exec, attach and port-forward sessions to listens.
type Streaming struct {
	Address string `toml:"address" json:"address"`
	// Port is a number; "0" picks a free port at each start.
	Port string `toml:"port" json:"port"`
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS instead of HTTP.
	TLSCertFile string `toml:"tls_cert_file" json:"tls_cert_file"`
	TLSKeyFile  string `toml:"tls_key_file" json:"tls_key_file"`
}

// Metrics is the [metrics] table: where Berth serves its own metrics.
type Metrics struct {
	// Address is "ip:port"; empty turns the endpoint off.
	Address string `toml:"address" json:"address"`
}

// NRI is the [nri] table: the Node Resource Interface host that relays pod
// and container events to NRI plugins and applies their adjustments. The
// defaults are containerd 2.x's.
type NRI struct {
	// Enable runs the host; false: no plugin runs and every hook is a no-op.
	Enable bool `toml:"enable" json:"enable"`
	// SocketPath is the unix socket external plugins connect to.
	SocketPath string `toml:"socket_path" json:"socket_path"`
	// PluginPath holds pre-installed plugins that berthd starts itself.
	PluginPath string `toml:"plugin_path" json:"plugin_path"`
	// PluginConfigPath holds the pre-installed plugins' configuration.
	PluginConfigPath string `toml:"plugin_config_path" json:"plugin_config_path"`
	// PluginRegistrationTimeout bounds a plugin's registration.
	PluginRegistrationTimeout Duration `toml:"plugin_registration_timeout" json:"plugin_registration_timeout"`
	// PluginRequestTimeout bounds a plugin's handling of one event.
	PluginRequestTimeout Duration `toml:"plugin_request_timeout" json:"plugin_request_timeout"`
}

// Registry is one [registries."host"] table.
type Registry struct {
	// Mirrors are endpoint URLs tried in order before the host itself.
	Mirrors []string `toml:"mirrors" json:"mirrors,omitempty"`
	// MirrorsOnly: never fall back to the host itself.
	MirrorsOnly bool `toml:"mirrors_only" json:"mirrors_only"`
	// Insecure allows plain HTTP and unverified TLS for this host.
	Insecure bool `toml:"insecure" json:"insecure"`
	// CAFile is a PEM bundle trusted for this host and its mirrors.
	CAFile string `toml:"ca_file" json:"ca_file,omitempty"`
}

// RuntimeHandler is one [runtime_handlers.<name>] table. Every handler runs
// its pods' containers with Berth's own runtime; handlers differ in these
// options.
type RuntimeHandler struct {
	// PrivilegedWithoutHostDevices: a privileged container of the handler's
	// pods gets neither the host's devices nor access to every device, as
	// containerd's option of that name does for sandboxed runtimes.
	PrivilegedWithoutHostDevices bool `toml:"privileged_without_host_devices" json:"privileged_without_host_devices"`
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
			DefaultSubnet:  "",
			PluginTimeout:  Duration(2 * time.Minute),
		},
		Image: Image{
			MaxConcurrentDownloads: 3,
			BlobFetchConnections:   4,
			BlobFetchChunkSize:     16 << 20,
			PullProgressTimeout:    Duration(time.Minute),
			PullMinRate:            1024,
			PinnedImages:           []string{},
		},
		Streaming: Streaming{Address: "127.0.0.1", Port: "0"},
		NRI: NRI{
			Enable:                    true,
			SocketPath:                "/var/run/nri/nri.sock",
			PluginPath:                "/opt/nri/plugins",
			PluginConfigPath:          "/etc/nri/conf.d",
			PluginRegistrationTimeout: Duration(5 * time.Second),
			PluginRequestTimeout:      Duration(2 * time.Second),
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

// Duration is a time.Duration written as a Go duration string ("1m30s") in TOML
// and JSON.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("%q is not a duration such as \"1m30s\"", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// String is the duration in Go syntax ("1m0s").
func (d Duration) String() string { return time.Duration(d).String() }
