package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-cri/berth/images/content"
	"github.com/berth-cri/berth/images/remote"
	"github.com/berth-cri/berth/images/snapshot"
)

// faultFS is the content store's seam with a disk that fills up: once
// armed, every ingest write past `room` bytes fails with err.
type faultFS struct {
	armed  atomic.Bool
	room   atomic.Int64
	err    error
	ranged bool // fail only ranged writes (layer blobs), not whole ones (manifest, config)
}

func (f *faultFS) CreateTemp(dir, pattern string) (content.File, error) {
	file, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	*os.File
	fs *faultFS
}

func (f *faultFile) take(n int) error {
	if f.fs.armed.Load() && f.fs.room.Add(-int64(n)) < 0 {
		return &os.PathError{Op: "write", Path: f.Name(), Err: f.fs.err}
	}
	return nil
}

func (f *faultFile) Write(p []byte) (int, error) {
	if !f.fs.ranged {
		if err := f.take(len(p)); err != nil {
			return 0, err
		}
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.take(len(p)); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

// diskFault injects a full disk at one write point of a pull while armed.
type diskFault struct {
	name string
	// inject arms the fault on s with err; it returns a func that disarms it.
	inject func(s *Service, err error) (disarm func())
}

var diskFaults = []diskFault{
	{"manifest ingest", func(s *Service, errno error) func() {
		fs := &faultFS{err: errno}
		fs.armed.Store(true) // no room at all
		s.content.UseFS(fs)
		return func() { fs.armed.Store(false) }
	}},
	{"layer blob ingest", func(s *Service, errno error) func() {
		fs := &faultFS{err: errno, ranged: true}
		fs.room.Store(200) // part of a layer blob fits
		fs.armed.Store(true)
		s.content.UseFS(fs)
		return func() { fs.armed.Store(false) }
	}},
	{"layer unpack", func(s *Service, errno error) func() {
		var armed atomic.Bool
		armed.Store(true)
		s.apply = func(ctx context.Context, dir string, r io.Reader, opts snapshot.ApplyOptions) (snapshot.ApplyStats, error) {
			if !armed.Load() {
				return snapshot.Apply(ctx, dir, r, opts)
			}
			// Some files go in, then the disk is full.
			os.WriteFile(filepath.Join(dir, "partial"), []byte("half a layer"), 0o644)
			return snapshot.ApplyStats{}, fmt.Errorf("layer entry %q: write: %w", "usr/bin/big", errno)
		}
		return func() { armed.Store(false) }
	}},
	{"layer sync", func(s *Service, errno error) func() {
		var armed atomic.Bool
		armed.Store(true)
		s.disk.fs = func(dir string) error {
			if armed.Load() {
				return fmt.Errorf("sync %s: %w", dir, errno) // delayed allocation fails at sync
			}
			return syncFS(dir)
		}
		return func() { armed.Store(false) }
	}},
	{"layer record", failCommit("layer")},
	{"image record", failCommit("image")},
}

// failCommit makes the index's commits of one kind fail, as bbolt's do on
// a full disk (the transaction is rolled back).
func failCommit(op string) func(s *Service, errno error) func() {
	return func(s *Service, errno error) func() {
		var armed atomic.Bool
		armed.Store(true)
		db := s.meta.db
		s.meta.update = func(o string, fn func(*bolt.Tx) error) error {
			if o == op && armed.Load() {
				return fmt.Errorf("commit %s: write %s: %w", o, db.Path(), errno)
			}
			return db.Update(fn)
		}
		return func() { armed.Store(false) }
	}
}

// A pull that meets a full disk (ENOSPC, or EDQUOT: a quota) at any write
// fails with ResourceExhausted naming the image, leaves no partial blob,
// layer or record, keeps the usage (ImageFsInfo) true, and the same pull
// succeeds once there is room again.
func TestPullOnFullDisk(t *testing.T) {
	for _, errno := range []unix.Errno{unix.ENOSPC, unix.EDQUOT} {
		for _, f := range diskFaults {
			t.Run(fmt.Sprintf("%s/%s", f.name, unix.ErrnoName(errno)), func(t *testing.T) {
				reg := newPullRegistry(t)
				reg.pushImage(t, "test/app:v1", "full")
				ref := reg.host + "/test/app:v1"
				s := newService(t, t.TempDir())
				s.opts.MaxConcurrentDownloads = 3
				disarm := f.inject(s, errno)

				_, err := s.Pull(context.Background(), ref, remote.Auth{})
				if !errdefs.IsResourceExhausted(err) || !errors.Is(err, errno) {
					t.Fatalf("pull on a full disk = %v, want ResourceExhausted wrapping %s", err, unix.ErrnoName(errno))
				}
				if errdefs.IsFailedPrecondition(err) || errdefs.IsDataLoss(err) {
					t.Fatalf("pull on a full disk = %v: carries another sentinel", err)
				}
				if !strings.Contains(err.Error(), ref) || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), s.opts.Root) {
					t.Fatalf("error %q does not name the image, the full disk and where", err)
				}
				assertNoPartial(t, s)
				if st := s.PullStats(); st.Pulls["disk_full"].Count != 1 {
					t.Fatalf("stats = %+v", st)
				}

				disarm()
				img, err := s.Pull(context.Background(), ref, remote.Auth{})
				if err != nil {
					t.Fatalf("pull once there is room: %v", err)
				}
				if b, err := os.ReadFile(filepath.Join(s.layerDir(img.Layers[0]), "etc/os-release")); err != nil || string(b) != "berth test full" {
					t.Fatalf("layer content = %q, %v", b, err)
				}
				assertNoPartial(t, s)
			})
		}
	}
}

// assertNoPartial checks that the store holds only complete things, each
// accounted: no ingest file, no tmp layer dir, a record for every layer dir
// and a dir for every record, every image's layers and blobs in place, and
// a usage (what ImageFsInfo reports) that matches the disk.
func assertNoPartial(t *testing.T, s *Service) {
	t.Helper()
	if ingest, _ := os.ReadDir(filepath.Join(s.opts.Root, "ingest")); len(ingest) != 0 {
		t.Fatalf("ingest left: %d files", len(ingest))
	}
	entries, _ := os.ReadDir(s.layersDir)
	records, _ := s.meta.layers()
	if len(entries) != len(records) {
		t.Fatalf("%d layer dirs for %d layer records", len(entries), len(records))
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpLayerPrefix) {
			t.Fatalf("half layer left: %s", e.Name())
		}
	}
	var layerBytes int64
	for _, l := range records {
		if _, err := os.Stat(s.layerDir(l.ChainID)); err != nil {
			t.Fatalf("layer record without its dir: %v", err)
		}
		layerBytes += l.Size
	}
	imgs, _ := s.List(context.Background())
	for _, img := range imgs {
		for _, l := range img.Layers {
			if _, err := s.meta.layer(l); err != nil {
				t.Fatalf("image %s without its layer %s", img.ID, l)
			}
		}
		if _, _, err := s.Inspect(img); err != nil {
			t.Fatalf("image %s without its manifest or config: %v", img.ID, err)
		}
	}
	// The blobs' usage is what is on disk.
	var blobBytes, blobs int64
	filepath.WalkDir(filepath.Join(s.opts.Root, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			blobBytes += fi.Size()
			blobs++
		}
		return nil
	})
	if b, n := s.content.Usage(); b != blobBytes || n != blobs {
		t.Fatalf("blob usage says %d bytes in %d blobs, the disk holds %d in %d", b, n, blobBytes, blobs)
	}
	if total, _, err := s.Usage(); err != nil || total != blobBytes+layerBytes {
		t.Fatalf("usage = %d (%v), want %d", total, err, blobBytes+layerBytes)
	}
}
