package remote

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// hostsFile is a containerd-style <dir>/<host>/hosts.toml.
type hostsFile struct {
	Server     string                `toml:"server"`
	SkipVerify bool                  `toml:"skip_verify"`
	CA         any                   `toml:"ca"`
	Host       map[string]hostsEntry `toml:"host"`
}

type hostsEntry struct {
	Capabilities []string `toml:"capabilities"`
	SkipVerify   bool     `toml:"skip_verify"`
	CA           any      `toml:"ca"`
	OverridePath bool     `toml:"override_path"`
}

// LoadHostsDir reads every <dir>/<host>/hosts.toml (containerd's certs.d
// format) into Hosts. [host."URL"] tables with the pull capability become
// mirrors in file order; a server other than the host itself becomes the last
// endpoint in place of the host. A missing dir means no settings.
func LoadHostsDir(dir string) (Hosts, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Hosts{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry config dir: %w", err)
	}
	hosts := Hosts{}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name(), "hosts.toml")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		h, err := loadHostsFile(e.Name(), path)
		if err != nil {
			return nil, err
		}
		name := e.Name()
		if name == "_default" {
			continue // containerd's fallback for every host: not supported
		}
		hosts[name] = h
	}
	return hosts, nil
}

func loadHostsFile(host, path string) (Host, error) {
	var f hostsFile
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return Host{}, fmt.Errorf("%s: %w", path, err)
	}
	if u := md.Undecoded(); len(u) > 0 {
		return Host{}, fmt.Errorf("%s: unknown key %q", path, u[0].String())
	}
	ca, err := firstCA(f.CA)
	if err != nil {
		return Host{}, fmt.Errorf("%s: key \"ca\": %w", path, err)
	}
	h := Host{Insecure: f.SkipVerify, CAFile: ca}
	for _, key := range tableOrder(md, "host") {
		entry := f.Host[key]
		if entry.OverridePath {
			return Host{}, fmt.Errorf("%s: host %q: override_path is not supported", path, key)
		}
		if len(entry.Capabilities) > 0 && !slices.Contains(entry.Capabilities, "pull") {
			continue
		}
		eca, err := firstCA(entry.CA)
		if err != nil {
			return Host{}, fmt.Errorf("%s: host %q key \"ca\": %w", path, key, err)
		}
		h.Mirrors = append(h.Mirrors, Endpoint{URL: withScheme(key), SkipVerify: entry.SkipVerify, CAFile: eca})
	}
	if f.Server != "" {
		server := withScheme(f.Server)
		if strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://") != host {
			h.Mirrors = append(h.Mirrors, Endpoint{URL: server, SkipVerify: f.SkipVerify, CAFile: ca})
			h.MirrorsOnly = true
		}
	}
	for _, m := range h.Mirrors {
		if _, err := parseMirror(m); err != nil {
			return Host{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return h, nil
}

// tableOrder returns the keys of [table."key"] sub-tables in file order.
func tableOrder(md toml.MetaData, table string) []string {
	var out []string
	for _, k := range md.Keys() {
		if len(k) == 2 && k[0] == table {
			out = append(out, k[1])
		}
	}
	return out
}

func withScheme(u string) string {
	if strings.Contains(u, "://") {
		return u
	}
	return "https://" + u
}

// firstCA accepts ca = "file" or ca = ["file", ...] (the first is used).
func firstCA(v any) (string, error) {
	switch ca := v.(type) {
	case nil:
		return "", nil
	case string:
		return ca, nil
	case []any:
		if len(ca) == 0 {
			return "", nil
		}
		if s, ok := ca[0].(string); ok {
			return s, nil
		}
	}
	return "", fmt.Errorf("must be a file name or a list of file names")
}
