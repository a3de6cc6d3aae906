package snapshot

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzApply feeds arbitrary bytes (seeded with hostile tars) to Apply and
// checks the one invariant that matters: nothing outside the layer changes.
func FuzzApply(f *testing.F) {
	seeds := [][]entry{
		{file("../../x", "a")},
		{symlink("l", "../"), file("l/x", "a")},
		{symlink("l", "/"), dir("l/tmp/"), file("l/tmp/x", "a")},
		{hardlink("h", "../outside")},
		{dir("d/"), file("d/.wh..wh..opq", ""), file(".wh.d", "")},
		{symlink("a", "b"), symlink("b", "a"), file("a/x", "loop")},
		{file("x", "1"), dir("x/"), file("x/y", "2")},
	}
	for _, s := range seeds {
		f.Add(tarOf(f, s...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		layer := filepath.Join(parent, "layer")
		os.Mkdir(layer, 0o755)
		outside := filepath.Join(parent, "outside")
		os.WriteFile(outside, []byte("keep"), 0o644)
		Apply(context.Background(), layer, bytes.NewReader(data), ApplyOptions{})
		entries, _ := os.ReadDir(parent)
		if len(entries) != 2 {
			t.Fatalf("entries outside the layer: %d", len(entries))
		}
		if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
			t.Fatalf("outside file changed: %q, %v", b, err)
		}
	})
}
