package images

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func newService(t *testing.T, root string, pinned ...string) *Service {
	t.Helper()
	s, err := New(context.Background(), Options{Root: root, Pinned: pinned})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// addImage stores blobs, layer dirs and records as a finished pull would.
func addImage(t *testing.T, s *Service, id string, names []string, layerNames ...string) *Image {
	t.Helper()
	ctx := context.Background()
	layers := chain(layerNames...)
	for _, l := range layers {
		dir := s.layerDir(l.ChainID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "file-"+l.DiffID.Encoded()[:8]), []byte("x"), 0o644)
	}
	blob := func(data string) digest.Digest {
		d := digest.FromString(data)
		w, err := s.content.Writer(ctx, d, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		w.Write([]byte(data))
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return d
	}
	img := imageOf(id, layers)
	img.ID = blob(`{"config":"` + id + `"}`).String()
	img.Manifest = blob(`{"manifest":"` + id + `"}`)
	img.Size = 10 * int64(len(layers))
	if _, err := commitWithLayers(t, s.meta, img, layers, names); err != nil {
		t.Fatal(err)
	}
	return img
}

func TestServiceGetListRemove(t *testing.T) {
	s := newService(t, t.TempDir())
	ctx := context.Background()
	a := addImage(t, s, "a", []string{"docker.io/library/a:1"}, "base", "top-a")
	b := addImage(t, s, "b", []string{"docker.io/library/b:1"}, "base", "top-b")

	for _, ref := range []string{"a:1", "docker.io/library/a:1", a.ID, a.ID[7:], a.ID[7:20]} {
		got, err := s.Get(ctx, ref)
		if err != nil || got.ID != a.ID {
			t.Fatalf("Get(%q) = %v, %v", ref, got, err)
		}
	}
	list, _ := s.List(ctx)
	if len(list) != 2 {
		t.Fatalf("List = %d images", len(list))
	}
	bytesBefore, _, _ := s.Usage()

	if err := s.Remove(ctx, "a:1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "a:1"); err != nil {
		t.Fatalf("removing a missing image: %v", err)
	}
	if _, err := os.Stat(s.layerDir(dg("chain:base"))); err != nil {
		t.Fatal("shared base layer removed")
	}
	if _, err := os.Stat(s.layerDir(chain("base", "top-a")[1].ChainID)); !os.IsNotExist(err) {
		t.Fatalf("top-a layer dir kept: %v", err)
	}
	if s.content.Has(a.Manifest) || s.content.Has(digest.Digest(a.ID)) {
		t.Fatal("blobs of the removed image kept")
	}
	if !s.content.Has(b.Manifest) {
		t.Fatal("blobs of the other image removed")
	}
	if bytesAfter, _, _ := s.Usage(); bytesAfter >= bytesBefore {
		t.Fatalf("Usage %d → %d, want less after Remove", bytesBefore, bytesAfter)
	}
}

func TestPinnedImageIsNotRemoved(t *testing.T) {
	s := newService(t, t.TempDir(), "registry.k8s.io/pause:3.10")
	img := addImage(t, s, "p", []string{"registry.k8s.io/pause:3.10"}, "p")
	if !s.Pinned(img) {
		t.Fatal("not pinned")
	}
	if err := s.Remove(context.Background(), img.ID); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("Remove pinned = %v", err)
	}
}

func TestSnapshotsPinLayers(t *testing.T) {
	s := newService(t, t.TempDir())
	ctx := context.Background()
	img := addImage(t, s, "a", []string{"docker.io/library/a:1"}, "l1", "l2")
	rootfs, err := s.PrepareSnapshot(ctx, "ctr1", "a:1", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rootfs.Lower) != 2 || rootfs.Lower[0] != s.layerDir(img.Layers[1]) || rootfs.Upper == "" {
		t.Fatalf("rootfs = %+v", rootfs)
	}
	if keys, err := s.SnapshotKeys(); err != nil || len(keys) != 1 || keys[0] != "ctr1" {
		t.Fatalf("SnapshotKeys = %v, %v", keys, err)
	}
	if _, err := s.PrepareSnapshot(ctx, "ctr1", "a:1", false); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second prepare = %v", err)
	}
	if _, err := s.PrepareSnapshot(ctx, "../x", "a:1", false); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad key = %v", err)
	}
	if err := s.Remove(ctx, "a:1"); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(s.layerDir(l)); err != nil {
			t.Fatalf("layer under a snapshot removed with its image: %v", err)
		}
	}
	if err := s.RemoveSnapshot(ctx, "ctr1"); err != nil {
		t.Fatal(err)
	}
	if err := s.gc(ctx); err != nil {
		t.Fatal(err)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(s.layerDir(l)); !os.IsNotExist(err) {
			t.Fatalf("layer kept after its last user went: %v", err)
		}
	}
	if err := s.RemoveSnapshot(ctx, "ctr1"); err != nil {
		t.Fatalf("removing a missing snapshot: %v", err)
	}
}

func TestRecoverCleansLeftovers(t *testing.T) {
	root := t.TempDir()
	s := newService(t, root)
	kept := addImage(t, s, "kept", []string{"docker.io/library/kept:1"}, "k")
	broken := addImage(t, s, "broken", []string{"docker.io/library/broken:1"}, "b")
	s.Close()

	// What a crash leaves: an unfinished unpack, a layer dir without record,
	// an unfinished download, a lost layer dir, a snapshot dir without record.
	os.MkdirAll(filepath.Join(root, "layers", "tmp-123"), 0o755)
	orphan := filepath.Join(root, "layers", "sha256-"+dg("orphan").Encoded())
	os.MkdirAll(orphan, 0o755)
	os.WriteFile(filepath.Join(root, "ingest", "partial"), []byte("x"), 0o600)
	os.RemoveAll(s.layerDir(broken.Layers[0]))
	os.MkdirAll(filepath.Join(root, "snapshots", "ghost"), 0o755)

	s2 := newService(t, root)
	for _, p := range []string{filepath.Join(root, "layers", "tmp-123"), orphan, filepath.Join(root, "ingest", "partial"), filepath.Join(root, "snapshots", "ghost")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s survived recovery: %v", p, err)
		}
	}
	if _, err := s2.Get(context.Background(), broken.ID); !errdefs.IsNotFound(err) {
		t.Errorf("image with a lost layer kept: %v", err)
	}
	if _, err := s2.Get(context.Background(), "kept:1"); err != nil {
		t.Errorf("intact image lost: %v", err)
	}
	if !s2.content.Has(kept.Manifest) || s2.content.Has(broken.Manifest) {
		t.Error("blob collection after recovery is wrong")
	}
}

// A chain too long for one page of mount options mounts through short links.
func TestLongChainMounts(t *testing.T) {
	s := newService(t, t.TempDir())
	var names []string
	for i := 0; i < 80; i++ {
		names = append(names, fmt.Sprintf("layer-%d", i))
	}
	addImage(t, s, "long", []string{"docker.io/library/long:1"}, names...)
	rootfs, err := s.PrepareSnapshot(context.Background(), "ctr", "long:1", false)
	if err != nil {
		t.Fatal(err)
	}
	abs := "lowerdir=" + strings.Join(rootfs.Lower, ":")
	if len(abs) <= maxMountOptions {
		t.Fatalf("test chain too short: %d bytes", len(abs))
	}
	opts, chdir := rootfs.MountOptions()
	if chdir != rootfs.Dir || len(opts) > maxMountOptions || !strings.HasPrefix(opts, "lowerdir=l/0:l/1:") || !strings.Contains(opts, ",upperdir=upper,workdir=work") {
		t.Fatalf("options %q (%d bytes) from %q", opts, len(opts), chdir)
	}
	for i, lower := range rootfs.Lower {
		if got, _ := os.Readlink(filepath.Join(chdir, "l", strconv.Itoa(i))); got != lower {
			t.Fatalf("l/%d -> %q, want %q", i, got, lower)
		}
	}
	if os.Getuid() != 0 {
		return
	}
	// Mount it for real from the snapshot dir (this test changes the cwd).
	target := t.TempDir()
	wd, _ := os.Getwd()
	if err := os.Chdir(chdir); err != nil {
		t.Fatal(err)
	}
	err = unix.Mount("overlay", target, "overlay", 0, opts)
	os.Chdir(wd)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	entries, _ := os.ReadDir(target)
	if len(entries) != 80 {
		t.Fatalf("merged view has %d entries, want 80 (one file per layer)", len(entries))
	}
}

// Writable-layer usage is measured per snapshot, and in total.
func TestSnapshotUsage(t *testing.T) {
	s := newService(t, t.TempDir())
	addImage(t, s, "img", []string{"docker.io/library/img:1"}, "layer-0")
	for _, key := range []string{"small", "big"} {
		rootfs, err := s.PrepareSnapshot(context.Background(), key, "img:1", false)
		if err != nil {
			t.Fatal(err)
		}
		if key == "big" {
			if err := os.WriteFile(filepath.Join(rootfs.Upper, "data"), bytes.Repeat([]byte("x"), 100000), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	small, smallInodes, err := s.SnapshotUsage("small")
	if err != nil {
		t.Fatal(err)
	}
	big, bigInodes, err := s.SnapshotUsage("big")
	if err != nil || big < small+100000 || bigInodes != smallInodes+1 {
		t.Fatalf("big: %d bytes %d inodes (small: %d, %d), %v", big, bigInodes, small, smallInodes, err)
	}
	total, _, err := s.SnapshotsUsage()
	if err != nil || total != small+big {
		t.Fatalf("total %d, want %d, %v", total, small+big, err)
	}
	for _, key := range []string{"nonesuch", "..", "../snapshots"} {
		if _, _, err := s.SnapshotUsage(key); !errdefs.IsNotFound(err) {
			t.Fatalf("missing snapshot %q: %v", key, err)
		}
	}
	// A snapshot made since the last measure (still fresh) has its usage.
	if _, err := s.PrepareSnapshot(context.Background(), "late", "img:1", false); err != nil {
		t.Fatal(err)
	}
	if late, lateInodes, err := s.SnapshotUsage("late"); err != nil || late != small || lateInodes != smallInodes {
		t.Fatalf("late: %d bytes %d inodes (small: %d, %d), %v", late, lateInodes, small, smallInodes, err)
	}
}
