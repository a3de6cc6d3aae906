package content

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// writeRanges writes data into in in chunks of size chunk, from several
// goroutines, the last chunk first.
func writeRanges(t *testing.T, in *Ingest, data []byte, chunk int) {
	t.Helper()
	var wg sync.WaitGroup
	for off := (len(data) - 1) / chunk * chunk; off >= 0; off -= chunk {
		end := min(off+chunk, len(data))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := in.WriteAt(data[off:end], int64(off)); err != nil {
				t.Error(err)
			}
		}()
		time.Sleep(time.Millisecond) // mostly out of order
	}
	wg.Wait()
}

func TestIngestOutOfOrderRanges(t *testing.T) {
	s, root := newStore(t)
	data := randomBytes(t, 100_000)
	d := digest.FromBytes(data)
	in, err := s.Ingest(d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	var got []byte
	done := make(chan error, 1)
	go func() {
		var err error
		got, err = io.ReadAll(in.Reader(context.Background()))
		done <- err
	}()
	writeRanges(t, in, data, 7_000)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the reader did not read the blob as written")
	}
	if err := in.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if stored, err := s.ReadAll(d); err != nil || !bytes.Equal(stored, data) {
		t.Fatalf("stored blob differs: %v", err)
	}
	if b, n := s.Usage(); b != int64(len(data)) || n != 1 {
		t.Fatalf("usage = %d bytes, %d blobs", b, n)
	}
	if e := ingestEntries(t, root); len(e) != 0 {
		t.Fatalf("ingest left: %v", e)
	}
}

func TestIngestRejects(t *testing.T) {
	data := randomBytes(t, 1000)
	for _, tt := range []struct {
		name  string
		write func(in *Ingest) error
	}{
		{"a wrong byte", func(in *Ingest) error {
			bad := bytes.Clone(data)
			bad[500] ^= 1
			_, err := in.WriteAt(bad, 0)
			return err
		}},
		{"a short blob", func(in *Ingest) error {
			_, err := in.WriteAt(data[:999], 0)
			in.Fail(io.ErrUnexpectedEOF)
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, root := newStore(t)
			d := digest.FromBytes(data)
			in, err := s.Ingest(d, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.write(in); err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, in.Reader(context.Background()))
			if err := in.Commit(context.Background()); !errdefs.IsFailedPrecondition(err) {
				t.Fatalf("commit = %v, want FailedPrecondition", err)
			}
			if s.Has(d) || len(ingestEntries(t, root)) != 0 {
				t.Fatal("a rejected blob left something behind")
			}
			if b, n := s.Usage(); b != 0 || n != 0 {
				t.Fatalf("usage = %d bytes, %d blobs", b, n)
			}
		})
	}
}

func TestIngestWriteBounds(t *testing.T) {
	s, _ := newStore(t)
	data := randomBytes(t, 100)
	in, err := s.Ingest(digest.FromBytes(data), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := in.WriteAt(data[:10], 95); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("write past the size = %v", err)
	}
	if _, err := in.WriteAt(data[:10], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := in.WriteAt(data[5:15], 5); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("overlapping write = %v", err)
	}
}

func TestIngestReaderWaits(t *testing.T) {
	s, _ := newStore(t)
	data := randomBytes(t, 100)
	in, err := s.Ingest(digest.FromBytes(data), 100)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	in.WriteAt(data[50:], 50) // a gap at the start: nothing to read yet
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := in.Reader(ctx)
	if n, err := r.Read(make([]byte, 10)); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read across a gap = %d, %v; want to wait until the context ends", n, err)
	}
	r = in.Reader(context.Background())
	in.WriteAt(data[:50], 0)
	buf := make([]byte, 100)
	if n, err := io.ReadFull(r, buf); n != 100 || err != nil {
		t.Fatalf("read = %d, %v", n, err)
	}
	failed := errors.New("connection reset")
	in.Fail(failed)
	if _, err := r.Read(buf); err != io.EOF {
		t.Fatalf("read at the end = %v, want EOF (the whole blob was written)", err)
	}
}

// fullFS fails every ingest write once `room` bytes have been written: a
// disk that fills up.
type fullFS struct {
	room atomic.Int64
	err  error
}

func (f *fullFS) CreateTemp(dir, pattern string) (File, error) {
	file, err := osFS{}.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &fullFile{File: file, fs: f}, nil
}

type fullFile struct {
	File
	fs *fullFS
}

func (f *fullFile) take(n int) error {
	if f.fs.room.Add(-int64(n)) < 0 {
		return fmt.Errorf("write %s: %w", f.Name(), f.fs.err)
	}
	return nil
}

func (f *fullFile) Write(p []byte) (int, error) {
	if err := f.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *fullFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func TestDiskFullLeavesNoIngest(t *testing.T) {
	for _, errno := range []error{syscall.ENOSPC, syscall.EDQUOT} {
		t.Run(errno.Error(), func(t *testing.T) {
			s, root := newStore(t)
			fs := &fullFS{err: errno}
			fs.room.Store(500)
			s.UseFS(fs)
			data := randomBytes(t, 1000)
			d := digest.FromBytes(data)
			if err := write(s, d, int64(len(data)), data); !errors.Is(err, errno) {
				t.Fatalf("write on a full disk = %v", err)
			}
			in, err := s.Ingest(d, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := in.WriteAt(data[:600], 0); !errors.Is(err, errno) {
				t.Fatalf("ranged write on a full disk = %v", err)
			}
			in.Close()
			if s.Has(d) || len(ingestEntries(t, root)) != 0 {
				t.Fatal("a write that hit a full disk left something behind")
			}
			// Space is back: the same blob goes in.
			fs.room.Store(1 << 20)
			if err := write(s, d, int64(len(data)), data); err != nil {
				t.Fatal(err)
			}
		})
	}
}
