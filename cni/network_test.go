package cni

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePlugins makes executable files named after plugins in a temp bin dir.
func fakePlugins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeConf(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

const bridgeList = `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge","bridge":"x0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}},{"type":"portmap","capabilities":{"portMappings":true}}]}`

func TestStatus(t *testing.T) {
	allPlugins := []string{"bridge", "host-local", "portmap", "loopback", "macvlan"}
	tests := []struct {
		name     string
		confs    map[string]string
		plugins  []string
		defNet   bool
		wantErr  string // empty: ready
		wantName string
	}{
		{name: "default network ready", defNet: true, plugins: allPlugins},
		{name: "default network disabled", defNet: false, plugins: allPlugins, wantErr: "default network is disabled"},
		{name: "default network missing bridge", defNet: true, plugins: []string{"loopback", "portmap"}, wantErr: `plugin "bridge" not found`},
		{name: "ipam plugin needed", defNet: true, plugins: []string{"bridge", "portmap", "loopback"}, wantErr: `plugin "host-local" not found`},
		{name: "loopback not needed (Berth brings lo up)", defNet: true, plugins: []string{"bridge", "host-local", "portmap"}},
		{name: "conflist ready", confs: map[string]string{"10-net.conflist": strings.Replace(bridgeList, "%s", "net", 1)}, plugins: allPlugins},
		{name: "first file by name wins", confs: map[string]string{
			"20-b.conflist": strings.Replace(bridgeList, "%s", "b", 1),
			"10-a.conf":     `{"cniVersion":"1.0.0","name":"a","type":"macvlan"}`,
		}, plugins: []string{"loopback", "macvlan"}},
		{name: "single conf missing plugin", confs: map[string]string{"10-a.conf": `{"cniVersion":"1.0.0","name":"a","type":"ipvlan"}`}, plugins: allPlugins, wantErr: `plugin "ipvlan" not found`},
		{name: "broken config", confs: map[string]string{"10-a.conflist": `{"name": `}, plugins: allPlugins, defNet: true, wantErr: "10-a.conflist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			confDir := t.TempDir()
			for name, data := range tt.confs {
				writeConf(t, confDir, name, data)
			}
			m := New(Options{ConfDir: confDir, BinDirs: []string{t.TempDir(), fakePlugins(t, tt.plugins...)},
				DefaultNetwork: tt.defNet, DefaultBridge: "berth0", DefaultSubnet: "10.88.0.0/16"})
			err := m.Status(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Status: %v, want ready", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Status: %v, want ErrNotReady mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestStatusMissingConfDirUsesDefault(t *testing.T) {
	m := New(Options{ConfDir: filepath.Join(t.TempDir(), "absent"), BinDirs: []string{fakePlugins(t, "bridge", "host-local", "portmap", "loopback")},
		DefaultNetwork: true, DefaultBridge: "berth0", DefaultSubnet: "10.88.0.0/16"})
	if err := m.Status(context.Background()); err != nil {
		t.Fatalf("Status: %v", err)
	}
}

func TestDefaultNetworkConfig(t *testing.T) {
	b, err := defaultNetworkConfig("br9", []string{"10.9.0.0/16"}, "/var/lib/berth/cni/networks", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"bridge":"br9"`, `"subnet":"10.9.0.0/16"`, `"type":"host-local"`, `"ipMasq":true`, `"portMappings":true`, `"dataDir":"/var/lib/berth/cni/networks"`} {
		if !strings.Contains(string(b), w) {
			t.Errorf("default network %s lacks %s", b, w)
		}
	}
}

func TestCollectLeases(t *testing.T) {
	dir := t.TempDir()
	for name, owner := range map[string]string{"10.88.0.2": "live-pod\r\neth0", "10.88.0.3": "gone-pod\r\neth0", "last_reserved_ip.0": "10.88.0.3", "lock": ""} {
		os.WriteFile(filepath.Join(dir, name), []byte(owner), 0o644)
	}
	New(Options{}).collectLeases(context.Background(), dir, map[string]bool{"live-pod": true})
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if strings.Join(left, ",") != "10.88.0.2,last_reserved_ip.0,lock" {
		t.Fatalf("left %v, want the live lease and the plugin's own files", left)
	}
}
