package config

import (
	"bytes"
	"text/template"
)

// defaultTemplate is the commented default berth.toml that `berthd config
// default` prints. A test checks that it decodes to exactly Default() and that
// it names every key, so the two cannot drift apart.
var defaultTemplate = template.Must(template.New("berth.toml").Funcs(template.FuncMap{"q": quote, "qs": quoteList}).Parse(`# berth.toml: configuration of berthd, the Berth CRI runtime.
# Files in berth.d/*.toml next to this file are read after it, in name order;
# each overrides only the keys it sets. Command-line flags override both.

# Persistent state: images, pod and container records. Flag: --root.
root = {{q .Root}}

# Volatile state: sockets, pinned namespaces, per-pod files. Flag: --state.
state = {{q .State}}

# Path of the CRI gRPC unix socket (mode 0660). Flag: --listen.
listen = {{q .Listen}}

# Log level: trace, debug, info, warn, error, fatal or panic. Flag: --log-level.
log_level = {{q .LogLevel}}

# Log format: "text", "json", or "journald" (each entry sent to the systemd
# journal with its fields as journal fields: journalctl -u berth POD=<id>;
# berth.service sets it). Flag: --log-format.
log_format = {{q .LogFormat}}

# Cgroup driver, "cgroupfs" or "systemd" (needs systemd as init). The kubelet's
# cgroupDriver must match; Berth reports it through the RuntimeConfig RPC.
cgroup_driver = {{q .CgroupDriver}}

# Pod networking through CNI.
[cni]
# Directory of CNI network configs; the first .conflist/.conf/.json by name is
# the pod network.
conf_dir = {{q .CNI.ConfDir}}

# Directories searched for CNI plugin binaries, in order.
bin_dirs = {{qs .CNI.BinDirs}}

# When conf_dir holds no config, use Berth's embedded bridge network
# (bridge + host-local IPAM + portmap, masquerading egress).
default_network = {{.CNI.DefaultNetwork}}

# Bridge device of the embedded default network.
default_bridge = {{q .CNI.DefaultBridge}}

# Pod subnet of the embedded default network. Empty: the node's pod CIDR
# once the kubelet gives it (UpdateRuntimeConfig; kept under <root>/cni
# across restarts), until then 10.88.0.0/16. A subnet set here always wins.
default_subnet = {{q .CNI.DefaultSubnet}}

# Deadline of each CNI operation (ADD, DEL, CHECK, STATUS, GC of the whole
# network list). A plugin still running then is killed, with the processes
# it started, and RunPodSandbox fails and undoes everything.
plugin_timeout = {{q .CNI.PluginTimeout.String}}

# Image pulls and the image store.
[image]
# Layers one pull downloads at once.
max_concurrent_downloads = {{.Image.MaxConcurrentDownloads}}

# A large layer blob is fetched over this many connections at once, in ranges
# of blob_fetch_chunk_size bytes, and unpacked as its bytes arrive: blobs of at
# least one chunk per connection (64 MiB by default), from registries that
# serve ranges. Smaller blobs, and registries that do not, get one stream. A
# dropped connection is resumed where it stopped. 1 turns ranges off.
blob_fetch_connections = {{.Image.BlobFetchConnections}}

# The size of those ranges, in bytes (1 MiB to 1 GiB). The blob goes to disk
# as it arrives, so memory does not grow with the chunk or the blob.
blob_fetch_chunk_size = {{.Image.BlobFetchChunkSize}}

# A pull whose download of any one layer makes no progress for this long is
# cancelled (and one connection idle for half of it is resumed on a fresh
# one); "0s" turns the check off.
pull_progress_timeout = {{q .Image.PullProgressTimeout.String}}

# A pull any of whose layers arrives slower than this many bytes per second,
# measured over each pull_progress_timeout of transfer, is cancelled: a
# registry that trickles a byte now and then never stalls, but never finishes
# either. 0 (or pull_progress_timeout = "0s") turns the check off.
pull_min_rate = {{.Image.PullMinRate}}

# Images reported as pinned and never removed by RemoveImage.
pinned_images = {{qs .Image.PinnedImages}}

# A containerd-style certs.d directory: <host>/hosts.toml files with "server"
# and [host."https://mirror"] tables (capabilities, skip_verify, ca). Empty: none.
registry_config_path = {{q .Image.RegistryConfigPath}}

# The streaming server: the kubelet proxies exec, attach and port-forward
# sessions to it (URLs are valid once, for a minute).
[streaming]
# Its IP address; keep it on loopback unless something else must reach it.
address = {{q .Streaming.Address}}

# Its port; "0" picks a free one at each start.
port = {{q .Streaming.Port}}

# A PEM certificate and key to serve HTTPS with (both, or neither for HTTP).
tls_cert_file = {{q .Streaming.TLSCertFile}}

# The certificate's private key (PEM).
tls_key_file = {{q .Streaming.TLSKeyFile}}

# Berth's own metrics, for Prometheus: CRI call latencies by method and code,
# image pulls (results, durations, layers, bytes, resumes), pods and containers
# by state, shims. Served at /metrics.
[metrics]
# "ip:port" to serve them on, e.g. "127.0.0.1:9813"; empty: not served.
address = {{q .Metrics.Address}}

# NRI, the Node Resource Interface (as in containerd 2.x and CRI-O): plugins
# see every pod and container event in order, and may adjust a container's
# spec before it is created, update other containers' resources, or refuse.
[nri]
# Run the NRI host. false: no plugin is started or accepted, no event goes out.
enable = {{.NRI.Enable}}

# Unix socket that external plugins connect to (and critest -nri-socket).
# containerd 2.x serves the same default path: berthd refuses to start while
# another process answers on it (a stale socket file is replaced), so give
# each runtime on a node a path of its own.
socket_path = {{q .NRI.SocketPath}}

# Pre-installed plugins, started by berthd: executables named <idx>-<name>
# (two digits, then the plugin's name), e.g. 10-resource-policy.
plugin_path = {{q .NRI.PluginPath}}

# Configuration of the pre-installed plugins: <idx>-<name>.conf, else
# <name>.conf, handed to the plugin when it is configured.
plugin_config_path = {{q .NRI.PluginConfigPath}}

# How long a plugin has to register once started or connected.
plugin_registration_timeout = {{q .NRI.PluginRegistrationTimeout.String}}

# How long a plugin has to answer one event; what a late answer does then
# (fail the request or drop the plugin) is the plugin's failure policy.
plugin_request_timeout = {{q .NRI.PluginRequestTimeout.String}}

# Per-registry settings, one table per host[:port]; none by default. Example:
#
# [registries."registry.k8s.io"]
# mirrors = ["http://127.0.0.1:5000"]  # tried in order, then the host itself unless mirrors_only = true
# mirrors_only = false
# insecure = false                     # plain HTTP / unverified TLS allowed for this host
# ca_file = ""                         # PEM CA bundle trusted for this host and its mirrors
#
# Registries on loopback may always use plain HTTP, as with Docker.

# CRI runtime handlers besides the default one (""), one table per name; none
# by default. A pod asks for one through its RuntimeClass's handler; an
# unknown name is refused. Every handler runs containers with Berth's own
# runtime. Example (node e2e's RuntimeClass tests use "test-handler"):
#
# [runtime_handlers.test-handler]
# privileged_without_host_devices = false  # true: privileged containers get no host devices
`))

// DefaultTOML returns the complete default configuration as TOML, every key
// with a comment.
func DefaultTOML() string {
	var b bytes.Buffer
	if err := defaultTemplate.Execute(&b, Default()); err != nil {
		panic(err) // the template and Default() are both fixed at build time
	}
	return b.String()
}

func quote(s string) string {
	var b bytes.Buffer
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func quoteList(l []string) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, s := range l {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(s))
	}
	b.WriteByte(']')
	return b.String()
}
