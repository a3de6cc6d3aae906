package volumes

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/errdefs"
)

func TestResolveImageSubPath(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc/app", "usr/share", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/app/conf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"abs":        "/etc/app",          // absolute: from the image's root
		"rel":        "etc/app",           // relative to its dir
		"data/up":    "../usr/share",      // climbs, stays inside
		"out":        "../..",             // climbs above the image
		"data/deep":  "../../../etc",      // climbs above the image
		"hostabs":    "/proc/self",        // absolute, missing in the image
		"loop":       "loop",              // never ends
		"etc/passwd": "/etc/app/conf",     // a file through a link
		"chain":      "abs/../../usr",     // a link whose target passes a link then climbs
		"toolong":    "data/up/../../etc", // climbs out only through the link's dir
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		sub, want string // want "" is an InvalidArgument
	}{
		{"", "."},
		{"etc", "etc"},
		{"./etc//app/", "etc/app"},
		{"abs", "etc/app"},
		{"abs/conf", "etc/app/conf"},
		{"rel", "etc/app"},
		{"data/up", "usr/share"},
		{"etc/passwd", "etc/app/conf"},
		{"chain", "usr"},
		{"toolong", "etc"},
		{"out", ""},
		{"data/deep", ""},
		{"hostabs", ""},
		{"loop", ""},
		{"missing", ""},
		{"etc/app/conf/more", ""},
		{"../etc", ""},
		{"etc/../etc", ""},
		{"/etc", ""},
	} {
		t.Run(tc.sub, func(t *testing.T) {
			got, err := ResolveImageSubPath(root, tc.sub)
			if tc.want == "" {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("got %q, %v; want InvalidArgument", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, tc.want); got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
		})
	}
}
