package spec

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The seccomp profile kinds a container may ask for.
const (
	SeccompUnconfined     = "unconfined"
	SeccompRuntimeDefault = "runtime/default"
	SeccompLocalhost      = "localhost"
)

// Seccomp is a container's seccomp profile as the caller resolved it: a
// kind and, for Localhost, the profile file's contents (the caller reads the
// file; this package does no I/O).
type Seccomp struct {
	Kind    string
	Profile []byte
}

// SeccompChoice reads which profile the security context asks for, and the
// file of a Localhost profile. No profile means unconfined, as in the CRI.
// Without the seccomp field, the deprecated seccomp_profile_path string is
// read ("runtime/default", "docker/default", "unconfined",
// "localhost/<absolute path>"), as older callers send only that.
func SeccompChoice(sc *runtime.LinuxContainerSecurityContext) (kind, path string, err error) {
	p := sc.GetSeccomp()
	if p == nil {
		return seccompPathChoice(sc)
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_RuntimeDefault:
		return SeccompRuntimeDefault, "", nil
	case runtime.SecurityProfile_Unconfined:
		return SeccompUnconfined, "", nil
	case runtime.SecurityProfile_Localhost:
		return localhostProfile(p.GetLocalhostRef())
	}
	return "", "", fmt.Errorf("seccomp profile type %v: %w", p.GetProfileType(), errdefs.ErrInvalidArgument)
}

func localhostProfile(path string) (string, string, error) {
	if !filepath.IsAbs(path) {
		return "", "", fmt.Errorf("seccomp localhost profile %q is not an absolute path: %w", path, errdefs.ErrInvalidArgument)
	}
	return SeccompLocalhost, filepath.Clean(path), nil
}

// seccomp is the spec's filter for a container holding caps: none when
// unconfined, Berth's default profile, or a Localhost profile in the OCI
// format.
func seccomp(in Seccomp, caps []string) (*specs.LinuxSeccomp, error) {
	switch in.Kind {
	case "", SeccompUnconfined:
		return nil, nil
	case SeccompRuntimeDefault:
		return DefaultSeccomp(caps), nil
	case SeccompLocalhost:
		var s specs.LinuxSeccomp
		if err := json.Unmarshal(in.Profile, &s); err != nil {
			return nil, fmt.Errorf("seccomp localhost profile: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		if s.DefaultAction == "" {
			return nil, fmt.Errorf("seccomp localhost profile has no defaultAction: %w", errdefs.ErrInvalidArgument)
		}
		return &s, nil
	}
	return nil, fmt.Errorf("seccomp profile kind %q: %w", in.Kind, errdefs.ErrInvalidArgument)
}

func seccompPathChoice(sc *runtime.LinuxContainerSecurityContext) (kind, path string, err error) {
	//lint:ignore SA1019 the deprecated field is still part of the CRI: read, not ignored
	v := sc.GetSeccompProfilePath()
	switch {
	case v == "" || v == "unconfined":
		return SeccompUnconfined, "", nil
	case v == "runtime/default" || v == "docker/default":
		return SeccompRuntimeDefault, "", nil
	case strings.HasPrefix(v, localhostPrefix):
		return localhostProfile(strings.TrimPrefix(v, localhostPrefix))
	}
	return "", "", fmt.Errorf("seccomp_profile_path %q: not runtime/default, unconfined or localhost/<path>: %w", v, errdefs.ErrInvalidArgument)
}
