package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// tarBlock is one ustar header block (Go's tar writer refuses to write the
// GNU sparse records, so the test writes them by hand).
func tarBlock(name string, typ byte, size int64) []byte {
	b := make([]byte, 512)
	copy(b[0:100], name)
	copy(b[100:108], "0000644\x00")
	copy(b[108:116], "0000000\x00")
	copy(b[116:124], "0000000\x00")
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1700000000))
	b[156] = typ
	copy(b[257:265], "ustar\x0000")
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b
}

func pad(b []byte) []byte { return append(b, make([]byte, (512-len(b)%512)%512)...) }

// sparseTar is a layer with one PAX GNU sparse 1.0 file "f" of realSize
// bytes, all a hole but data at offset: a few blocks of tar for any size.
func sparseTar(realSize, offset int64, data string) []byte {
	var records []byte
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "f"},
		{"GNU.sparse.realsize", fmt.Sprint(realSize)}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		n := len(rec) + len(fmt.Sprint(len(rec))) // the length counts its own digits
		if len(fmt.Sprint(n)) != len(fmt.Sprint(len(rec))) {
			n++
		}
		records = append(records, fmt.Sprintf("%d%s", n, rec)...)
	}
	sparseMap := pad([]byte(fmt.Sprintf("1\n%d\n%d\n", offset, len(data))))
	body := append(sparseMap, data...)
	var out []byte
	out = append(out, tarBlock("PaxHeaders/f", 'x', int64(len(records)))...)
	out = append(out, pad(records)...)
	out = append(out, tarBlock("GNUSparseFile.0/f", '0', int64(len(body)))...)
	out = append(out, pad(body)...)
	return append(out, make([]byte, 1024)...)
}

// A sparse entry declaring a GiB for a few blocks of tar takes no more room
// on disk than its data: written out, a tiny layer could fill the disk.
func TestApplySparseEntryStaysSparse(t *testing.T) {
	layer, check := sandbox(t)
	const size, offset = 1 << 30, 1 << 20
	data := sparseTar(size, offset, "hello")
	if len(data) > 4096 {
		t.Fatalf("the test's sparse tar is %d bytes", len(data))
	}
	if _, err := apply(t, layer, data); err != nil {
		t.Fatal(err)
	}
	check()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layer, "f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size {
		t.Fatalf("size %d, want %d", st.Size, int64(size))
	}
	if used := st.Blocks * 512; used > 4<<20 {
		t.Fatalf("a sparse entry of 5 data bytes takes %d bytes of disk", used)
	}
	f, err := os.Open(filepath.Join(layer, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, 16)
	if _, err := f.ReadAt(got, offset-8); err != nil {
		t.Fatal(err)
	}
	if want := append(make([]byte, 8), "hello\x00\x00\x00"...); !bytes.Equal(got, want) {
		t.Fatalf("content at %d = %q, want %q", offset-8, got, want)
	}
}

// Runs of zeros in a plain file become holes too, and the content reads the
// same: a trailing hole is the file's size.
func TestApplyZerosBecomeHoles(t *testing.T) {
	layer, _ := sandbox(t)
	body := string(make([]byte, 8<<20)) + "end" + string(make([]byte, 1<<20))
	if _, err := apply(t, layer, tarOf(t, file("z", body))); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(layer, "z"))
	if err != nil || string(got) != body {
		t.Fatalf("content differs (%d bytes, want %d): %v", len(got), len(body), err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(layer, "z"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 2<<20 {
		t.Fatalf("9 MiB of zeros take %d bytes of disk", used)
	}
}

// cancelAfter serves n bytes of 'x', then cancels and serves more.
type cancelAfter struct {
	n, read int64
	cancel  func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	c.read += int64(len(p))
	if c.read >= c.n {
		c.cancel()
	}
	return len(p), nil
}

// One entry can declare terabytes: Apply stops within it once ctx ends,
// not only between entries.
func TestApplyStopsWithinAnEntry(t *testing.T) {
	layer, _ := sandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const size = 1 << 40
	content := &cancelAfter{n: 4 << 20, cancel: cancel}
	r := io.MultiReader(bytes.NewReader(tarBlock("big", '0', size)), content)
	_, err := Apply(ctx, layer, r, ApplyOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply = %v, want context.Canceled", err)
	}
	if content.read > 64<<20 {
		t.Fatalf("Apply read %d bytes of the entry after it was cancelled at 4 MiB", content.read)
	}
}
