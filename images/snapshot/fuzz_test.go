package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzApply feeds arbitrary bytes (seeded with every hostile case of
// TestApplyHostileTarsKeepOutside) to Apply and checks the one invariant that
// matters: nothing outside the layer root changes, whatever Apply returns.
// The oracle is canaries next to the root (files, dirs, a symlink, with
// xattrs): their full lstat, ctime included, and xattrs, plus the list of
// names next to the root. Without root the tars still run, with fewer
// operations possible (chown, trusted.* xattrs and device nodes fail).
//
// Absolute names in the seeds point at this process's canaries: plain `go
// test` checks them fully; under -fuzz the workers mutate them as bytes.
func FuzzApply(f *testing.F) {
	base := f.TempDir() // the layer root is base/layer, recreated per input
	c := makeCanaries(f, base, false)
	for _, tc := range hostileCases {
		f.Add(tarOf(f, tc.entries(base)...))
	}
	f.Add(tarOf(f, dir("etc/"), file("etc/passwd", "root:x:0:0"), symlink("bin/sh", "busybox"),
		hardlink("bin/passwd", "etc/passwd"), entry{name: "dev/null", typ: tar.TypeChar, mode: 0o666, xattrs: map[string]string{"user.a": "b"}},
		file("x", "1"), dir("x/"), file("x/y", "2"), file(".wh.x", ""), dir("d/"), file("d/.wh..wh..opq", "")))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !smallTar(data) {
			return
		}
		layer := filepath.Join(base, "layer")
		if err := os.Mkdir(layer, 0o755); err != nil {
			t.Fatal(err)
		}
		defer removeLayer(layer) // when a check fails; a no-op otherwise
		Apply(context.Background(), layer, bytes.NewReader(data), ApplyOptions{})
		if d := c.changed(); d != "" {
			t.Fatalf("outside the layer root:\n%s", d)
		}
		if err := removeLayer(layer); err != nil {
			t.Fatal(err)
		}
		names, err := readNames(base)
		if err != nil || !slices.Equal(names, []string{"canary", "canarylink", "layer-evil"}) {
			t.Fatalf("next to the layer root: %v, %v", names, err)
		}
	})
}

// smallTar rejects inputs whose entries declare much content: a tiny GNU
// sparse entry can declare terabytes of zeros, which Apply would write.
func smallTar(data []byte) bool {
	tr := tar.NewReader(bytes.NewReader(data))
	var total int64
	for {
		hdr, err := tr.Next()
		if err != nil {
			return true // Apply meets the same end or error
		}
		if total += hdr.Size; hdr.Size > 1<<20 || total > 4<<20 {
			return false
		}
	}
}

// removeLayer removes an applied layer, also when, without root, entries
// made the layer's directories unwritable.
func removeLayer(layer string) error {
	if os.RemoveAll(layer) == nil {
		return nil
	}
	filepath.WalkDir(layer, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(layer)
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}
