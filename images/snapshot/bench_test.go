package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkApplyDistroLayer unpacks a layer shaped like a distribution's
// base: 4000 small files four directories deep, with symlinks and hard
// links among them (the per-entry cost of resolving parents on fds).
func BenchmarkApplyDistroLayer(b *testing.B) {
	var entries []entry
	body := string(bytes.Repeat([]byte("x"), 2048))
	for d := range 40 {
		dir := fmt.Sprintf("usr/share/pkg%02d/data", d)
		entries = append(entries, entry{name: dir + "/", typ: tar.TypeDir})
		for f := range 100 {
			entries = append(entries, entry{name: fmt.Sprintf("%s/f%03d", dir, f), typ: tar.TypeReg, body: body})
		}
		entries = append(entries, entry{name: dir + "/link", typ: tar.TypeSymlink, link: "f000"},
			entry{name: dir + "/hard", typ: tar.TypeLink, link: dir + "/f001"})
	}
	data := tarOf(b, entries...)
	base := b.TempDir()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		dir := filepath.Join(base, fmt.Sprint(i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(context.Background(), dir, bytes.NewReader(data), ApplyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
