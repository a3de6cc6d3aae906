package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func ingestEntries(t *testing.T, root string) []os.DirEntry {
	t.Helper()
	e, err := os.ReadDir(filepath.Join(root, "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func write(s *Store, d digest.Digest, size int64, data []byte) error {
	ctx := context.Background()
	w, err := s.Writer(ctx, d, size)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.Write(data); err != nil {
		return err
	}
	return w.Commit(ctx)
}

func TestCommitAndRead(t *testing.T) {
	s, root := newStore(t)
	data := []byte("hello blob")
	d := digest.FromBytes(data)
	if err := write(s, d, int64(len(data)), data); err != nil {
		t.Fatal(err)
	}
	got, err := s.ReadAll(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	if !s.Has(d) {
		t.Fatal("Has = false")
	}
	fi, _ := os.Stat(filepath.Join(root, "blobs", "sha256", d.Encoded()))
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob mode %v, want 0444", fi.Mode())
	}
	if len(ingestEntries(t, root)) != 0 {
		t.Fatal("ingest not cleaned after commit")
	}
	if b, n := s.Usage(); b != int64(len(data)) || n != 1 {
		t.Fatalf("Usage = %d, %d", b, n)
	}
}

func TestVerificationFailures(t *testing.T) {
	data := []byte("the real content")
	d := digest.FromBytes(data)
	tests := []struct {
		name string
		size int64
		data []byte
		want string
	}{
		{"wrong content", int64(len(data)), []byte("the fake content"), "has digest"},
		{"truncated", int64(len(data)), data[:5], "got 5 bytes"},
		{"oversize", 4, data, "more than the expected"},
		{"unknown size wrong content", -1, []byte("x"), "has digest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, root := newStore(t)
			err := write(s, d, tt.size, tt.data)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if s.Has(d) {
				t.Fatal("blob stored despite failed verification")
			}
			if len(ingestEntries(t, root)) != 0 {
				t.Fatal("ingest left behind")
			}
			if b, n := s.Usage(); b != 0 || n != 0 {
				t.Fatalf("Usage = %d, %d after failure", b, n)
			}
		})
	}
}

func TestInvalidDigestsRejectedBeforeDisk(t *testing.T) {
	s, root := newStore(t)
	hex := digest.FromString("x").Encoded()
	for _, d := range []digest.Digest{"sha256:../../etc/passwd", "sha256:" + digest.Digest(strings.ToUpper(hex)), "sha256:abc", "md5:" + digest.Digest(hex[:32]), "sha512:" + digest.Digest(hex+hex), ""} {
		if _, err := s.Writer(context.Background(), d, -1); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Writer(%q) = %v, want InvalidArgument", d, err)
		}
		if _, err := s.Open(d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Open(%q) = %v, want InvalidArgument", d, err)
		}
		if err := s.Delete(context.Background(), d); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Delete(%q) = %v, want InvalidArgument", d, err)
		}
	}
	if len(ingestEntries(t, root)) != 0 {
		t.Fatal("invalid digest touched the ingest dir")
	}
}

func TestConcurrentWritersSameDigest(t *testing.T) {
	s, _ := newStore(t)
	data := make([]byte, 1<<20)
	rand.Read(data)
	d := digest.FromBytes(data)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- write(s, d, int64(len(data)), data)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.ReadAll(d)
	if !bytes.Equal(got, data) {
		t.Fatal("blob corrupted by concurrent writers")
	}
	if b, n := s.Usage(); b != int64(len(data)) || n != 1 {
		t.Fatalf("Usage = %d, %d; counted more than once", b, n)
	}
}

func TestCloseWithoutCommitAborts(t *testing.T) {
	s, root := newStore(t)
	d := digest.FromString("abc")
	w, err := s.Writer(context.Background(), d, 3)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if len(ingestEntries(t, root)) != 1 {
		t.Fatal("no ingest file while writing")
	}
	w.Close()
	if s.Has(d) || len(ingestEntries(t, root)) != 0 {
		t.Fatal("aborted write left something behind")
	}
	if err := w.Commit(context.Background()); err == nil {
		t.Fatal("Commit after Close succeeded")
	}
}

func TestCleanIngestAndReopenUsage(t *testing.T) {
	s, root := newStore(t)
	a, b := []byte("aaaa"), []byte("bbbbbbbb")
	write(s, digest.FromBytes(a), 4, a)
	write(s, digest.FromBytes(b), 8, b)
	if err := s.Delete(context.Background(), digest.FromBytes(a)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), digest.FromBytes(a)); !errdefs.IsNotFound(err) {
		t.Fatalf("second Delete = %v, want NotFound", err)
	}
	// A crash mid-download leaves an ingest file.
	os.WriteFile(filepath.Join(root, "ingest", "leftover"), []byte("partial"), 0o600)
	s2, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	if bb, n := s2.Usage(); bb != 8 || n != 1 {
		t.Fatalf("Usage after reopen = %d, %d; want 8, 1", bb, n)
	}
	if err := s2.CleanIngest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(ingestEntries(t, root)) != 0 {
		t.Fatal("CleanIngest left files")
	}
}

func BenchmarkWriteCommit(b *testing.B) {
	s, err := New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 64<<20)
	rand.Read(data)
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		data[0] = byte(i) // a new blob each round
		d := digest.FromBytes(data)
		if err := write(s, d, int64(len(data)), data); err != nil {
			b.Fatal(err)
		}
		s.Delete(context.Background(), d)
	}
}
