package images

import (
	"testing"

	"github.com/containerd/errdefs"
)

const testHex = "9700f9a2f9c6b8b1a1e4c5d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b"

func TestNormalizeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"busybox", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest"},
		{"user/app:v1", "docker.io/user/app:v1"},
		{"registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		{"127.0.0.1:5000/x/y", "127.0.0.1:5000/x/y:latest"},
		{"busybox@sha256:" + testHex, "docker.io/library/busybox@sha256:" + testHex},
		{"gcr.io/a/b:tag@sha256:" + testHex, "gcr.io/a/b@sha256:" + testHex},
	}
	for _, tt := range tests {
		got, err := NormalizeName(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalizeNameRejects(t *testing.T) {
	for _, in := range []string{"", "Upper", "busybox@sha256:short", "busybox@md5:" + testHex[:32], "a b", "busybox:tag:tag"} {
		if got, err := NormalizeName(in); err == nil || !errdefs.IsInvalidArgument(err) {
			t.Errorf("NormalizeName(%q) = %q, %v; want InvalidArgument", in, got, err)
		}
	}
}

func TestParseLookup(t *testing.T) {
	tests := []struct {
		in   string
		want lookup
	}{
		{"sha256:" + testHex, lookup{byID, "sha256:" + testHex, ""}},
		{testHex, lookup{byID, "sha256:" + testHex, ""}},
		{"busybox", lookup{byName, "docker.io/library/busybox:latest", ""}},
		{"docker.io/library/busybox@sha256:" + testHex, lookup{byName, "docker.io/library/busybox@sha256:" + testHex, ""}},
		// A hex string is a valid repository name too: a name first, then a short ID.
		{"9700f9a2", lookup{byName, "docker.io/library/9700f9a2:latest", "9700f9a2"}},
	}
	for _, tt := range tests {
		got, err := parseLookup(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseLookup(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseLookup("sha256:nothex"); !errdefs.IsInvalidArgument(err) {
		t.Errorf("parseLookup(sha256:nothex) = %v, want InvalidArgument", err)
	}
}

func TestRepoDigest(t *testing.T) {
	got, err := repoDigest("docker.io/library/busybox:1.36", "sha256:"+testHex)
	if err != nil || got != "docker.io/library/busybox@sha256:"+testHex {
		t.Fatalf("repoDigest = %q, %v", got, err)
	}
}
