package nri

import (
	"testing"

	"github.com/containerd/nri/pkg/adaptation"

	"github.com/berth-cri/berth/cri/config"
)

// berth.toml's defaults are the nri library's (and so containerd 2.x's).
func TestConfigDefaultsAreNRIs(t *testing.T) {
	got := FromConfig(config.Default().NRI)
	want(t, got, Config{Enable: true, SocketPath: adaptation.DefaultSocketPath, PluginPath: adaptation.DefaultPluginPath,
		PluginConfigPath: adaptation.DefaultPluginConfigPath, RegistrationTimeout: adaptation.DefaultPluginRegistrationTimeout,
		RequestTimeout: adaptation.DefaultPluginRequestTimeout})
}
