package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Options with paths relative to a dir (long layer chains) mount from a
// thread of their own: the process's working directory stays where it was.
func TestMountRootfsRelativeToDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	dir := t.TempDir()
	var lower []string
	for i := range 120 {
		layer := filepath.Join(dir, "layers", strings.Repeat("x", 60)+strconv.Itoa(i))
		if err := os.MkdirAll(layer, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(layer, fmt.Sprint("file", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "l"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(layer, filepath.Join(dir, "l", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		lower = append(lower, "l/"+strconv.Itoa(i))
	}
	for _, d := range []string{"upper", "work"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	wd, _ := os.Getwd()
	target := filepath.Join(t.TempDir(), "rootfs")
	opts := "lowerdir=" + strings.Join(lower, ":") + ",upperdir=upper,workdir=work,index=off"
	if err := MountRootfs(opts, dir, target); err != nil {
		t.Fatal(err)
	}
	defer UnmountRootfs(target)
	if now, _ := os.Getwd(); now != wd {
		t.Fatalf("working directory moved to %s", now)
	}
	entries, err := os.ReadDir(target)
	if err != nil || len(entries) != 120 {
		t.Fatalf("merged view has %d entries (%v), want 120", len(entries), err)
	}
}
