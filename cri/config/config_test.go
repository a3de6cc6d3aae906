package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("default config does not validate: %v", err)
	}
}

// The printed default must decode to exactly Default() and set every key.
func TestDefaultTOMLMatchesDefault(t *testing.T) {
	var got Config
	md, err := toml.Decode(DefaultTOML(), &got)
	if err != nil {
		t.Fatalf("decode default TOML: %v", err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("default TOML has unknown keys %v", u)
	}
	if want := Default(); !reflect.DeepEqual(&got, want) {
		t.Fatalf("default TOML decodes to\n%+v\nwant\n%+v", got, *want)
	}
	keys := map[string]bool{}
	for _, k := range md.Keys() {
		keys[k.String()] = true
	}
	for _, k := range allKeys(reflect.TypeOf(Config{}), "") {
		if !keys[k] {
			t.Errorf("default TOML does not set key %q", k)
		}
	}
}

// Every key line in the default TOML follows a comment line.
func TestDefaultTOMLCommentsEveryKey(t *testing.T) {
	lines := strings.Split(DefaultTOML(), "\n")
	for i, l := range lines {
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, "[") {
			continue
		}
		if i == 0 || !strings.HasPrefix(lines[i-1], "#") {
			t.Errorf("key line %q has no comment above it", l)
		}
	}
}

func allKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := f.Tag.Get("toml")
		if name == "" {
			continue
		}
		if f.Type.Kind() == reflect.Map {
			continue // tables keyed by the user (registries): none by default
		}
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, allKeys(f.Type, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

func TestLoadMissingDefaultFileMeansDefaults(t *testing.T) {
	c, err := Load(filepath.Join(t.TempDir(), "berth.toml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Fatalf("got %+v, want defaults", c)
	}
}

func TestLoadMissingExplicitFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.toml")
	_, err := Load(path, true)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
}

func TestLoadDropInsInNameOrder(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "berth.toml")
	writeFile(t, main, "root = \"/srv/berth\"\nlog_level = \"debug\"\n[cni]\nbin_dirs = [\"/a\"]\n")
	writeFile(t, filepath.Join(dir, "berth.d", "20-second.toml"), "log_level = \"warn\"\n")
	writeFile(t, filepath.Join(dir, "berth.d", "10-first.toml"), "log_level = \"error\"\nstate = \"/srv/run\"\n[cni]\nbin_dirs = [\"/b\", \"/c\"]\n")
	writeFile(t, filepath.Join(dir, "berth.d", "30-ignored.conf"), "nonsense")

	c, err := Load(main, true)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Root, want.State, want.LogLevel = "/srv/berth", "/srv/run", "warn"
	want.CNI.BinDirs = []string{"/b", "/c"}
	c.sources, want.sources = nil, nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v\nwant %+v", c, want)
	}
}

func TestLoadErrorsNameFileAndKey(t *testing.T) {
	tests := []struct {
		name, data string
		want       []string
	}{
		{"unknown key", "roots = \"/x\"\n", []string{"unknown key", `"roots"`}},
		{"unknown nested key", "[cni]\nconf_dirs = \"/x\"\n", []string{"unknown key", `"cni.conf_dirs"`}},
		{"unknown table", "[registry]\nx = 1\n", []string{"unknown key", "registry"}},
		{"wrong type", "root = 5\n", []string{"root"}},
		{"wrong nested type", "[cni]\ndefault_network = \"yes\"\n", []string{"default_network"}},
		{"syntax", "root = \n", []string{"line 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "berth.toml")
			writeFile(t, path, tt.data)
			_, err := Load(path, true)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range append(tt.want, path) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadErrorInDropInNamesDropIn(t *testing.T) {
	dir := t.TempDir()
	dropIn := filepath.Join(dir, "berth.d", "50-bad.toml")
	writeFile(t, dropIn, "colour = \"blue\"\n")
	_, err := Load(filepath.Join(dir, "berth.toml"), false)
	if err == nil || !strings.Contains(err.Error(), dropIn) {
		t.Fatalf("got %v, want an error naming %s", err, dropIn)
	}
}

func TestValidateBadValues(t *testing.T) {
	tests := []struct {
		name   string
		set    func(c *Config)
		key    string
		reason string
	}{
		{"relative root", func(c *Config) { c.Root = "var/lib/berth" }, "root", "absolute"},
		{"empty state", func(c *Config) { c.State = "" }, "state", "empty"},
		{"unclean listen", func(c *Config) { c.Listen = "/run/berth/../berth.sock" }, "listen", "clean"},
		{"long listen", func(c *Config) { c.Listen = "/" + strings.Repeat("s", 120) }, "listen", "at most"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log_level", "one of"},
		{"log format", func(c *Config) { c.LogFormat = "xml" }, "log_format", "text"},
		{"cgroup driver", func(c *Config) { c.CgroupDriver = "cgroupv2" }, "cgroup_driver", "cgroupfs"},
		{"cni conf dir", func(c *Config) { c.CNI.ConfDir = "net.d" }, "cni.conf_dir", "absolute"},
		{"no bin dirs", func(c *Config) { c.CNI.BinDirs = nil }, "cni.bin_dirs", "at least one"},
		{"relative bin dir", func(c *Config) { c.CNI.BinDirs = []string{"/opt/cni/bin", "bin"} }, "cni.bin_dirs", "absolute"},
		{"long bridge", func(c *Config) { c.CNI.DefaultBridge = "a-very-long-bridge-name" }, "cni.default_bridge", "15"},
		{"bridge with slash", func(c *Config) { c.CNI.DefaultBridge = "br/0" }, "cni.default_bridge", "'/'"},
		{"subnet", func(c *Config) { c.CNI.DefaultSubnet = "10.88.0.0/33" }, "cni.default_subnet", "CIDR"},
		{"downloads", func(c *Config) { c.Image.MaxConcurrentDownloads = 0 }, "image.max_concurrent_downloads", "at least 1"},
		{"fetch connections", func(c *Config) { c.Image.BlobFetchConnections = 0 }, "image.blob_fetch_connections", "between 1 and 16"},
		{"many fetch connections", func(c *Config) { c.Image.BlobFetchConnections = 64 }, "image.blob_fetch_connections", "between 1 and 16"},
		{"small chunk", func(c *Config) { c.Image.BlobFetchChunkSize = 4096 }, "image.blob_fetch_chunk_size", "between 1 MiB"},
		{"negative timeout", func(c *Config) { c.Image.PullProgressTimeout = -1 }, "image.pull_progress_timeout", "negative"},
		{"negative min rate", func(c *Config) { c.Image.PullMinRate = -1 }, "image.pull_min_rate", "negative"},
		{"registry config path", func(c *Config) { c.Image.RegistryConfigPath = "certs.d" }, "image.registry_config_path", "absolute"},
		{"registry host", func(c *Config) { c.Registries = map[string]Registry{"http://x": {}} }, `registries.\"http://x\"`, "registry host"},
		{"mirror scheme", func(c *Config) { c.Registries = map[string]Registry{"gcr.io": {Mirrors: []string{"ftp://m"}}} }, `registries.\"gcr.io\".mirrors`, "http://"},
		{"mirror host", func(c *Config) { c.Registries = map[string]Registry{"gcr.io": {Mirrors: []string{"http://"}}} }, `registries.\"gcr.io\".mirrors`, "URL"},
		{"mirrors only", func(c *Config) { c.Registries = map[string]Registry{"gcr.io": {MirrorsOnly: true}} }, `registries.\"gcr.io\".mirrors_only`, "at least one mirror"},
		{"ca file", func(c *Config) { c.Registries = map[string]Registry{"gcr.io": {CAFile: "ca.pem"}} }, `registries.\"gcr.io\".ca_file`, "absolute"},
		{"handler name", func(c *Config) { c.RuntimeHandlers = map[string]RuntimeHandler{"Kata_Fast": {}} }, `runtime_handlers.\"Kata_Fast\"`, "RFC 1123"},
		{"empty handler name", func(c *Config) { c.RuntimeHandlers = map[string]RuntimeHandler{"": {}} }, `runtime_handlers.\"\"`, "RFC 1123"},
		{"streaming address", func(c *Config) { c.Streaming.Address = "localhost" }, "streaming.address", "IP address"},
		{"streaming port", func(c *Config) { c.Streaming.Port = "http" }, "streaming.port", "port number"},
		{"metrics address", func(c *Config) { c.Metrics.Address = "localhost:9813" }, "metrics.address", "ip:port"},
		{"tls cert alone", func(c *Config) { c.Streaming.TLSCertFile = "/etc/berth/cert.pem" }, "streaming.tls_cert_file", "both"},
		{"relative tls key", func(c *Config) { c.Streaming.TLSCertFile, c.Streaming.TLSKeyFile = "/c.pem", "k.pem" }, "streaming.tls_key_file", "absolute"},
		{"metrics port", func(c *Config) { c.Metrics.Address = "127.0.0.1" }, "metrics.address", "ip:port"},
		{"relative nri socket", func(c *Config) { c.NRI.SocketPath = "nri.sock" }, "nri.socket_path", "absolute"},
		{"long nri socket", func(c *Config) { c.NRI.SocketPath = "/" + strings.Repeat("n", 120) }, "nri.socket_path", "at most"},
		{"nri socket is the CRI socket", func(c *Config) { c.NRI.SocketPath = c.Listen }, "nri.socket_path", "differ from listen"},
		{"empty nri socket", func(c *Config) { c.NRI.SocketPath = "" }, "nri.socket_path", "empty"},
		{"nri plugin path", func(c *Config) { c.NRI.PluginPath = "/opt/nri/../plugins" }, "nri.plugin_path", "clean"},
		{"nri plugin config path", func(c *Config) { c.NRI.PluginConfigPath = "conf.d" }, "nri.plugin_config_path", "absolute"},
		{"nri registration timeout", func(c *Config) { c.NRI.PluginRegistrationTimeout = 0 }, "nri.plugin_registration_timeout", "positive"},
		{"nri request timeout", func(c *Config) { c.NRI.PluginRequestTimeout = -1 }, "nri.plugin_request_timeout", "positive"},
		{"nri disabled still validated", func(c *Config) { c.NRI.Enable, c.NRI.PluginPath = false, "plugins" }, "nri.plugin_path", "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.set(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate succeeded, want an error")
			}
			for _, w := range []string{`"` + tt.key + `"`, tt.reason, "default"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestValidateNamesSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.toml")
	writeFile(t, path, "log_format = \"yaml\"\n")
	c, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	c.Root = "relative"
	c.Set("root", "flag --root")
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate succeeded, want an error")
	}
	for _, w := range []string{"config file " + path + `: key "log_format" = "yaml"`, `flag --root: key "root" = "relative"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestJSONHasEffectiveValues(t *testing.T) {
	c := Default()
	c.Root = "/srv/x"
	js := c.JSON()
	for _, w := range []string{`"root":"/srv/x"`, `"default_bridge":"berth0"`} {
		if !strings.Contains(js, w) {
			t.Errorf("JSON %s lacks %s", js, w)
		}
	}
}

// The registries example in the default TOML, uncommented, is valid config.
func TestRegistriesExampleLoads(t *testing.T) {
	var example []string
	on := false
	for _, l := range strings.Split(DefaultTOML(), "\n") {
		if strings.HasPrefix(l, "# [registries.") {
			on = true
		}
		if on && l == "#" {
			break
		}
		if on {
			example = append(example, strings.TrimPrefix(l, "# "))
		}
	}
	if len(example) < 5 {
		t.Fatalf("no registries example in the default TOML: %v", example)
	}
	path := filepath.Join(t.TempDir(), "berth.toml")
	writeFile(t, path, strings.Join(example, "\n")+"\n[image]\npull_progress_timeout = \"90s\"\npull_min_rate = 4096\npinned_images = [\"registry.k8s.io/pause:3.10\"]\n")
	c, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r := c.Registries["registry.k8s.io"]
	if len(r.Mirrors) != 1 || r.Mirrors[0] != "http://127.0.0.1:5000" || r.MirrorsOnly || r.Insecure {
		t.Fatalf("registry = %+v", r)
	}
	if c.Image.PullProgressTimeout.String() != "1m30s" || c.Image.PullMinRate != 4096 || c.Image.MaxConcurrentDownloads != 3 || len(c.Image.PinnedImages) != 1 {
		t.Fatalf("image = %+v", c.Image)
	}
}

// The runtime handlers example in the default TOML, uncommented, is valid
// config.
func TestRuntimeHandlersExampleLoads(t *testing.T) {
	var example []string
	for _, l := range strings.Split(DefaultTOML(), "\n") {
		if strings.HasPrefix(l, "# [runtime_handlers.") || len(example) > 0 && strings.HasPrefix(l, "# ") {
			example = append(example, strings.TrimPrefix(l, "# "))
		}
	}
	path := filepath.Join(t.TempDir(), "berth.toml")
	writeFile(t, path, strings.Join(example, "\n")+"\n[runtime_handlers.sandboxed]\nprivileged_without_host_devices = true\n")
	c, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := map[string]RuntimeHandler{"test-handler": {}, "sandboxed": {PrivilegedWithoutHostDevices: true}}
	if !reflect.DeepEqual(c.RuntimeHandlers, want) {
		t.Fatalf("runtime handlers = %+v, want %+v", c.RuntimeHandlers, want)
	}
}

func TestBadDuration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.toml")
	writeFile(t, path, "[image]\npull_progress_timeout = \"soon\"\n")
	_, err := Load(path, true)
	if err == nil || !strings.Contains(err.Error(), "pull_progress_timeout") || !strings.Contains(err.Error(), "soon") {
		t.Fatalf("Load = %v, want an error naming the key and value", err)
	}
}

// An [nri] table in a drop-in overrides only the keys it sets.
func TestNRIDropIn(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "berth.d", "10-nri.toml"), "[nri]\nenable = false\nsocket_path = \"/run/berth/nri.sock\"\nplugin_request_timeout = \"500ms\"\n")
	c, err := Load(filepath.Join(dir, "berth.toml"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	want := Default().NRI
	want.Enable, want.SocketPath, want.PluginRequestTimeout = false, "/run/berth/nri.sock", Duration(500*time.Millisecond)
	if c.NRI != want {
		t.Fatalf("nri = %+v, want %+v", c.NRI, want)
	}
	if src := c.Source("nri.socket_path"); !strings.Contains(src, "10-nri.toml") {
		t.Fatalf("source of nri.socket_path = %q", src)
	}
}
