package images

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

func openTestMeta(t *testing.T) *meta {
	t.Helper()
	m, err := openMeta(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.close() })
	return m
}

func dg(s string) digest.Digest { return digest.FromString(s) }

// chain makes layer records for a stack of diff IDs named by strings.
func chain(names ...string) []Layer {
	var out []Layer
	var parent digest.Digest
	for _, n := range names {
		id := dg("chain:" + n)
		out = append(out, Layer{ChainID: id, Parent: parent, DiffID: dg(n), Blob: dg("blob:" + n), Size: 10})
		parent = id
	}
	return out
}

// commitWithLayers records layers, then the image, as a pull does.
func commitWithLayers(t *testing.T, m *meta, img *Image, layers []Layer, names []string) (*Image, error) {
	t.Helper()
	for i := range layers {
		if err := m.putLayer(&layers[i]); err != nil {
			t.Fatal(err)
		}
	}
	return m.commitImage(img, names)
}

func imageOf(id string, layers []Layer) *Image {
	img := &Image{ID: dg(id).String()}
	for _, l := range layers {
		img.Layers = append(img.Layers, l.ChainID)
	}
	return img
}

func TestCommitAndFind(t *testing.T) {
	m := openTestMeta(t)
	layers := chain("a", "b")
	img := imageOf("img1", layers)
	tag, dig := "docker.io/library/busybox:latest", "docker.io/library/busybox@"+dg("manifest").String()
	if _, err := commitWithLayers(t, m, img, layers, []string{tag, dig}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []lookup{
		{kind: byID, key: img.ID},
		{kind: byName, key: tag},
		{kind: byName, key: dig},
		{kind: byName, key: "docker.io/library/x:latest", idPrefix: img.ID[7:19]},
	} {
		got, err := m.find(l)
		if err != nil || got.ID != img.ID {
			t.Fatalf("find(%+v) = %v, %v", l, got, err)
		}
		if !slices.Equal(got.RepoTags, []string{tag}) || !slices.Equal(got.RepoDigests, []string{dig}) {
			t.Fatalf("names = %v %v", got.RepoTags, got.RepoDigests)
		}
	}
	if _, err := m.find(lookup{kind: byName, key: "docker.io/library/nope:latest"}); !errdefs.IsNotFound(err) {
		t.Fatalf("find missing = %v, want NotFound", err)
	}
	if l, err := m.layer(layers[1].ChainID); err != nil || l.Parent != layers[0].ChainID {
		t.Fatalf("layer = %+v, %v", l, err)
	}
}

func TestTagMovesToNewImage(t *testing.T) {
	m := openTestMeta(t)
	tag := "docker.io/library/app:v1"
	old := imageOf("old", chain("a"))
	commitWithLayers(t, m, old, chain("a"), []string{tag, "docker.io/library/app:stable"})
	newer := imageOf("new", chain("b"))
	commitWithLayers(t, m, newer, chain("b"), []string{tag})

	got, _ := m.find(lookup{kind: byName, key: tag})
	if got.ID != newer.ID {
		t.Fatalf("tag points at %s, want the new image", got.ID)
	}
	prev, err := m.find(lookup{kind: byID, key: old.ID})
	if err != nil || !slices.Equal(prev.RepoTags, []string{"docker.io/library/app:stable"}) {
		t.Fatalf("old image = %+v, %v; want it kept with its other tag only", prev, err)
	}
}

func TestRepullMergesNames(t *testing.T) {
	m := openTestMeta(t)
	img := imageOf("img", chain("a"))
	commitWithLayers(t, m, img, chain("a"), []string{"docker.io/library/a:1"})
	again := imageOf("img", chain("a"))
	stored, err := commitWithLayers(t, m, again, chain("a"), []string{"docker.io/library/a:2"})
	if err != nil || !slices.Equal(stored.RepoTags, []string{"docker.io/library/a:1", "docker.io/library/a:2"}) {
		t.Fatalf("stored = %+v, %v", stored, err)
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	m := openTestMeta(t)
	// Find two IDs sharing their first hex digit.
	var ids []string
	for i := 0; len(ids) < 2; i++ {
		id := dg(string(rune('a'+i%26)) + string(rune('0'+i/26))).String()
		if len(ids) == 0 || id[7] == ids[0][7] {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		commitWithLayers(t, m, &Image{ID: id}, nil, nil)
	}
	_, err := m.find(lookup{kind: byName, key: "docker.io/library/x:latest", idPrefix: ids[0][7:8]})
	if err == nil {
		t.Fatal("ambiguous prefix found an image")
	}
}

func TestDeleteAndDropUnusedLayers(t *testing.T) {
	m := openTestMeta(t)
	shared := chain("base", "mid")
	a := imageOf("a", append(shared[:2:2], chain("base", "mid", "top-a")[2]))
	bLayers := chain("base", "mid", "top-b")
	b := imageOf("b", bLayers)
	commitWithLayers(t, m, a, chain("base", "mid", "top-a"), []string{"docker.io/library/a:1"})
	commitWithLayers(t, m, b, bLayers, []string{"docker.io/library/b:1"})

	if err := m.deleteImage(a.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.deleteImage(a.ID); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete = %v, want NotFound", err)
	}
	if _, err := m.find(lookup{kind: byName, key: "docker.io/library/a:1"}); !errdefs.IsNotFound(err) {
		t.Fatalf("name of deleted image still resolves: %v", err)
	}
	unused, err := m.dropUnusedLayers(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(unused) != 1 || unused[0].ChainID != dg("chain:top-a") {
		t.Fatalf("unused = %+v, want only top-a", unused)
	}
	if _, err := m.layer(dg("chain:top-a")); !errdefs.IsNotFound(err) {
		t.Fatal("unused layer record kept")
	}
	if _, err := m.layer(dg("chain:base")); err != nil {
		t.Fatalf("shared base layer dropped: %v", err)
	}
}

func TestReopenKeepsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m, err := openMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	img := imageOf("img", chain("a"))
	commitWithLayers(t, m, img, chain("a"), []string{"docker.io/library/a:1"})
	m.close()
	m, err = openMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	list, err := m.list()
	if err != nil || len(list) != 1 || list[0].ID != img.ID {
		t.Fatalf("list after reopen = %v, %v", list, err)
	}
}

func schemaOf(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketImages); b != nil {
			v = string(b.Get([]byte(metaSchemaKey)))
		}
		return nil
	})
	return v
}

func TestSchemaWrittenOnCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	m, err := openMeta(path)
	if err != nil {
		t.Fatal(err)
	}
	m.close()
	if v := schemaOf(t, path); v != "1" {
		t.Fatalf("schema of a new index = %q, want \"1\"", v)
	}
}

// An index as berthd wrote it before the key existed: buckets and an image,
// no schema key. It is read as version 1 and gets the key.
func TestSchemaAddedToOldIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := imageOf("old", chain("a"))
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketNames, bucketLayers, bucketSnapshots} {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return putJSON(tx.Bucket(bucketImages), img.ID, img)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, err := openMeta(path)
	if err != nil {
		t.Fatalf("old index refused: %v", err)
	}
	list, err := m.list()
	m.close()
	if err != nil || len(list) != 1 || list[0].ID != img.ID {
		t.Fatalf("images of the old index = %v, %v", list, err)
	}
	if v := schemaOf(t, path); v != "1" {
		t.Fatalf("schema after opening an old index = %q, want \"1\"", v)
	}
}

func TestNewerSchemaRefusedUntouched(t *testing.T) {
	for _, v := range []string{"2", "banana"} {
		t.Run(v, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "meta.db")
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			// A future layout: only the images bucket, with its schema.
			err = db.Update(func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket(bucketImages)
				if err != nil {
					return err
				}
				return b.Put([]byte(metaSchemaKey), []byte(v))
			})
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			if _, err := openMeta(path); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), v) {
				t.Fatalf("open of schema %q = %v, want FailedPrecondition naming it", v, err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("a refused index was written to")
			}
		})
	}
}
