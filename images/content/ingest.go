package content

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// Ingest is a blob of known size being downloaded in ranges: any number of
// goroutines write parts of it at their offsets (WriteAt), in any order,
// while one reader follows behind (Reader), reading the blob in order as
// far as it is written and hashing what it reads. Commit then checks that
// the reader read the whole blob and that its digest is the expected one,
// and makes it visible as a Writer's Commit does.
//
// The ingest file is the buffer between the downloads and the reader, so
// memory stays bounded whatever the blob's size; what the reader hashes is
// what it read back from that file, which is what gets committed.
//
//	in, err := store.Ingest(desc.Digest, desc.Size)
//	defer in.Close()                     // aborts unless committed
//	go func() { in.Fail(fetchRanges(in)) }() // WriteAt from several connections
//	unpack(in.Reader(ctx))               // blocks until the bytes it needs are written
//	err = in.Commit(ctx)                 // verified, then visible
type Ingest struct {
	store    *Store
	f        File
	expected digest.Digest
	size     int64

	mu      sync.Mutex
	cond    *sync.Cond
	written spans // byte ranges written so far
	err     error // set by Fail: the reader gets it once it has read all that was written

	// The reader's state; only the reader touches it.
	hash hash.Hash
	read int64

	committed, closed bool
}

// Ingest starts a ranged download of blob d, whose size must be known.
func (s *Store) Ingest(d digest.Digest, size int64) (*Ingest, error) {
	if err := validate(d); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("blob %s: a ranged download needs the size: %w", d, errdefs.ErrInvalidArgument)
	}
	f, err := s.createIngest(d)
	if err != nil {
		return nil, err
	}
	in := &Ingest{store: s, f: f, expected: d, size: size, hash: d.Algorithm().Hash()}
	in.cond = sync.NewCond(&in.mu)
	return in, nil
}

// Size is the blob's expected size.
func (in *Ingest) Size() int64 { return in.size }

// WriteAt writes p at off. Writing past the expected size fails, and so
// does writing over bytes already written (a download that repeats a range
// is a bug, not something to hash twice). It is safe for concurrent use on
// different ranges.
func (in *Ingest) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > in.size {
		return 0, fmt.Errorf("blob %s: bytes %d-%d are outside its %d bytes: %w", in.expected, off, off+int64(len(p)), in.size, errdefs.ErrFailedPrecondition)
	}
	in.mu.Lock()
	overlap := in.written.overlaps(off, off+int64(len(p)))
	in.mu.Unlock()
	if overlap {
		return 0, fmt.Errorf("blob %s: bytes %d-%d written twice: %w", in.expected, off, off+int64(len(p)), errdefs.ErrFailedPrecondition)
	}
	n, err := in.f.WriteAt(p, off)
	if n > 0 {
		in.mu.Lock()
		in.written.add(off, off+int64(n))
		in.mu.Unlock()
		in.cond.Broadcast()
	}
	return n, err
}

// Fail ends the download: once the reader has read what was written, it
// gets err. A nil err is ignored (a download that ended well needs no
// word: the reader stops at the size).
func (in *Ingest) Fail(err error) {
	if err == nil {
		return
	}
	in.mu.Lock()
	if in.err == nil {
		in.err = err
	}
	in.mu.Unlock()
	in.cond.Broadcast()
}

// Reader returns the blob's reader: it reads the blob in order, waiting for
// the bytes it needs to be written, and ends with io.EOF at the expected
// size, or with the error given to Fail, or ctx's. There is one reader per
// Ingest.
func (in *Ingest) Reader(ctx context.Context) io.Reader {
	return &ingestReader{in: in, ctx: ctx}
}

type ingestReader struct {
	in  *Ingest
	ctx context.Context
}

func (r *ingestReader) Read(p []byte) (int, error) {
	in := r.in
	if in.read >= in.size {
		return 0, io.EOF
	}
	avail, err := in.wait(r.ctx, in.read)
	if avail == 0 {
		return 0, err
	}
	if int64(len(p)) > avail {
		p = p[:avail]
	}
	n, err := in.f.ReadAt(p, in.read)
	in.hash.Write(p[:n])
	in.read += int64(n)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// wait blocks until bytes from off on are written, and returns how many
// are; with none, it returns why: the download's error or ctx's.
func (in *Ingest) wait(ctx context.Context, off int64) (int64, error) {
	in.mu.Lock()
	n := in.written.from(off)
	in.mu.Unlock()
	if n > 0 {
		return n, nil // the common case: the reader is behind the download
	}
	stop := context.AfterFunc(ctx, func() {
		in.mu.Lock()
		defer in.mu.Unlock()
		in.cond.Broadcast()
	})
	defer stop()
	in.mu.Lock()
	defer in.mu.Unlock()
	for {
		if n := in.written.from(off); n > 0 {
			return n, nil
		}
		if in.err != nil {
			return 0, in.err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		in.cond.Wait()
	}
}

// Commit checks that the reader read the whole blob and that it has the
// expected digest, then makes it durable and visible. If the blob is
// already stored, the ingest is dropped and Commit succeeds.
func (in *Ingest) Commit(ctx context.Context) error {
	if in.closed {
		return fmt.Errorf("blob %s: ingest closed: %w", in.expected, errdefs.ErrFailedPrecondition)
	}
	defer in.Close()
	if err := verify(in.expected, in.hash, in.read, in.size); err != nil {
		return err
	}
	committed, err := in.store.link(in.f, in.expected, in.size)
	in.committed = committed
	return err
}

// Close removes the ingest file; an uncommitted blob is thereby aborted.
// The writers must be done. It is safe to call twice.
func (in *Ingest) Close() error {
	if in.closed {
		return nil
	}
	in.closed = true
	in.Fail(errors.New("ingest closed"))
	err := in.f.Close()
	if rmErr := os.Remove(in.f.Name()); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

// spans is a sorted list of disjoint, non-adjacent byte ranges [start, end).
// A download has a handful in flight at once, so a slice is plenty.
type spans []span

type span struct{ start, end int64 }

// add marks [start, end) written, merging it with its neighbours.
func (s *spans) add(start, end int64) {
	if start >= end {
		return
	}
	out := make(spans, 0, len(*s)+1)
	placed := false
	for _, x := range *s {
		switch {
		case x.end < start:
			out = append(out, x)
		case end < x.start:
			if !placed {
				out = append(out, span{start, end})
				placed = true
			}
			out = append(out, x)
		default: // touches or overlaps: merge into the new span
			start, end = min(start, x.start), max(end, x.end)
		}
	}
	if !placed {
		out = append(out, span{start, end})
	}
	*s = out
}

// overlaps reports whether any byte of [start, end) is already written.
func (s spans) overlaps(start, end int64) bool {
	for _, x := range s {
		if x.start < end && start < x.end {
			return true
		}
	}
	return false
}

// from returns how many bytes from off on are written without a gap.
func (s spans) from(off int64) int64 {
	for _, x := range s {
		if x.start <= off && off < x.end {
			return x.end - off
		}
	}
	return 0
}
