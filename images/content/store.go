package content

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
)

// Store is a content-addressed blob store.
type Store struct {
	root   string
	fs     FS
	bytes  atomic.Int64
	inodes atomic.Int64
}

// File is an ingest file as the store writes it: an *os.File, or a fake
// that injects faults (ENOSPC, EDQUOT) in tests.
type File interface {
	io.Writer
	io.WriterAt
	io.ReaderAt
	Sync() error
	Close() error
	Name() string
}

// FS creates ingest files: the one seam between the store's writes and the
// disk. Every byte of a blob reaches the disk through a File it created.
type FS interface {
	CreateTemp(dir, pattern string) (File, error)
}

type osFS struct{}

func (osFS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// New opens the store at root, creating its dirs, and counts what it holds.
func New(root string) (*Store, error) {
	s := &Store{root: root, fs: osFS{}}
	for _, d := range []string{s.blobDir(digest.SHA256), s.ingestDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create content dir %s: %w", d, err)
		}
	}
	if err := s.Walk(func(d digest.Digest) error {
		fi, err := os.Stat(s.path(d))
		if err != nil {
			return err
		}
		s.bytes.Add(fi.Size())
		s.inodes.Add(1)
		return nil
	}); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) blobDir(alg digest.Algorithm) string {
	return filepath.Join(s.root, "blobs", string(alg))
}
func (s *Store) ingestDir() string { return filepath.Join(s.root, "ingest") }

// path is only called with validated digests.
func (s *Store) path(d digest.Digest) string {
	return filepath.Join(s.blobDir(d.Algorithm()), d.Encoded())
}

// validate rejects digests that are malformed or use an unavailable algorithm,
// before they come near a path.
func validate(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d, err, errdefs.ErrInvalidArgument)
	}
	if d.Algorithm() != digest.SHA256 {
		return fmt.Errorf("digest %q: only sha256 is supported: %w", d, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Has reports whether a verified blob is stored.
func (s *Store) Has(d digest.Digest) bool {
	if validate(d) != nil {
		return false
	}
	_, err := os.Stat(s.path(d))
	return err == nil
}

// Size returns a stored blob's size, or ErrNotFound.
func (s *Store) Size(d digest.Digest) (int64, error) {
	if err := validate(d); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// Open opens a stored blob for reading, or returns ErrNotFound.
func (s *Store) Open(d digest.Digest) (*os.File, error) {
	if err := validate(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return f, err
}

// ReadAll returns a stored blob's bytes (for manifests and configs).
func (s *Store) ReadAll(d digest.Digest) ([]byte, error) {
	if err := validate(d); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	return data, err
}

// Delete removes a blob; a missing blob is ErrNotFound.
func (s *Store) Delete(ctx context.Context, d digest.Digest) error {
	if err := validate(d); err != nil {
		return err
	}
	p := s.path(d)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d, errdefs.ErrNotFound)
	}
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	s.bytes.Add(-fi.Size())
	s.inodes.Add(-1)
	log.G(ctx).WithField("blob", d).Debug("deleted blob")
	return nil
}

// Walk calls fn for every committed blob.
func (s *Store) Walk(fn func(digest.Digest) error) error {
	entries, err := os.ReadDir(s.blobDir(digest.SHA256))
	if err != nil {
		return fmt.Errorf("read blobs: %w", err)
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue // not ours; leave it
		}
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// UseFS replaces the filesystem seam (tests inject write faults with it).
// Call it before any writer exists.
func (s *Store) UseFS(fs FS) { s.fs = fs }

// Usage returns the bytes and inodes the committed blobs take, kept up to date
// on commit and delete (no walk).
func (s *Store) Usage() (bytes, inodes int64) {
	return s.bytes.Load(), s.inodes.Load()
}

// CleanIngest removes every unfinished write; call it at start-up, before any
// writer exists.
func (s *Store) CleanIngest(ctx context.Context) error {
	entries, err := os.ReadDir(s.ingestDir())
	if err != nil {
		return fmt.Errorf("read ingest dir: %w", err)
	}
	for _, e := range entries {
		log.G(ctx).WithField("ingest", e.Name()).Info("removing unfinished download")
		if err := os.RemoveAll(filepath.Join(s.ingestDir(), e.Name())); err != nil {
			return fmt.Errorf("clean ingest: %w", err)
		}
	}
	return nil
}

// Writer starts writing a blob expected to have digest d and size (-1 when
// unknown).
func (s *Store) Writer(ctx context.Context, d digest.Digest, size int64) (*Writer, error) {
	if err := validate(d); err != nil {
		return nil, err
	}
	f, err := s.createIngest(d)
	if err != nil {
		return nil, err
	}
	return &Writer{store: s, f: f, expected: d, size: size, hash: d.Algorithm().Hash()}, nil
}

func (s *Store) createIngest(d digest.Digest) (File, error) {
	f, err := s.fs.CreateTemp(s.ingestDir(), d.Encoded()[:12]+"-*")
	if err != nil {
		return nil, fmt.Errorf("start blob %s: %w", d, err)
	}
	return f, nil
}

// Writer writes one blob through the ingest dir.
type Writer struct {
	store     *Store
	f         File
	expected  digest.Digest
	size      int64
	hash      hash.Hash
	written   int64
	committed bool
	closed    bool
}

// Write hashes p and appends it to the ingest file. Writing past the expected
// size fails at once.
func (w *Writer) Write(p []byte) (int, error) {
	if w.size >= 0 && w.written+int64(len(p)) > w.size {
		return 0, fmt.Errorf("blob %s: more than the expected %d bytes: %w", w.expected, w.size, errdefs.ErrFailedPrecondition)
	}
	n, err := w.f.Write(p)
	w.hash.Write(p[:n])
	w.written += int64(n)
	return n, err
}

// Commit verifies size and digest and makes the blob visible. If the blob is
// already stored, the ingest is dropped and Commit succeeds.
func (w *Writer) Commit(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("blob %s: writer closed: %w", w.expected, errdefs.ErrFailedPrecondition)
	}
	defer w.Close()
	if err := verify(w.expected, w.hash, w.written, w.size); err != nil {
		return err
	}
	committed, err := w.store.link(w.f, w.expected, w.written)
	w.committed = committed
	return err
}

// link makes the verified ingest file f durable and visible as blob d:
// fsync, read-only, link into blobs/, fsync of the dir. committed is false
// when another writer committed d first (which is no error).
func (s *Store) link(f File, d digest.Digest, size int64) (committed bool, err error) {
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("sync blob %s: %w", d, err)
	}
	if err := os.Chmod(f.Name(), 0o444); err != nil {
		return false, err
	}
	// link, unlike rename, fails when another writer committed the same
	// blob first, so the usage is counted once; Close removes the ingest name.
	target := s.path(d)
	if err := os.Link(f.Name(), target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("commit blob %s: %w", d, err)
	}
	s.bytes.Add(size)
	s.inodes.Add(1)
	// A failed sync leaves the blob visible: it is complete and verified,
	// and another writer may already rely on it (its link saw ours).
	return true, syncDir(filepath.Dir(target))
}

// Close removes the ingest file; an uncommitted blob is thereby aborted. It is
// safe to call twice.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.f.Close()
	if rmErr := os.Remove(w.f.Name()); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
		err = errors.Join(err, rmErr)
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// verify checks a blob before it is committed: all its bytes (want < 0:
// the size was not known) and their digest.
func verify(expected digest.Digest, h hash.Hash, got, want int64) error {
	if want >= 0 && got != want {
		return fmt.Errorf("blob %s: got %d bytes, want %d: %w", expected, got, want, errdefs.ErrFailedPrecondition)
	}
	if d := digest.NewDigest(expected.Algorithm(), h); d != expected {
		return fmt.Errorf("blob %s: content has digest %s: %w", expected, d, errdefs.ErrFailedPrecondition)
	}
	return nil
}
