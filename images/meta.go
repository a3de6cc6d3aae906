package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Image is an image's record in meta.db.
type Image struct {
	// ID is the config digest, the image ID the kubelet compares.
	ID          string   `json:"id"`
	RepoTags    []string `json:"repo_tags,omitempty"`
	RepoDigests []string `json:"repo_digests,omitempty"`
	// Manifest is the digest of the platform manifest that was unpacked.
	Manifest  digest.Digest `json:"manifest"`
	MediaType string        `json:"media_type"`
	// Layers are the chain IDs of the image's layers, bottom first.
	Layers []digest.Digest `json:"layers"`
	// Size is the unpacked size of the layers, what the image costs on disk.
	Size     int64               `json:"size"`
	Config   ocispec.ImageConfig `json:"config"`
	PulledAt time.Time           `json:"pulled_at"`
}

// Layer is an unpacked layer's record: layers/<chain id>/ exists and is complete.
type Layer struct {
	ChainID digest.Digest `json:"chain_id"`
	Parent  digest.Digest `json:"parent,omitempty"`
	DiffID  digest.Digest `json:"diff_id"`
	Blob    digest.Digest `json:"blob"`
	Size    int64         `json:"size"`
	Inodes  int64         `json:"inodes"`
}

var (
	bucketImages    = []byte("images")    // image ID → Image
	bucketNames     = []byte("names")     // normalised tag or repo digest → image ID
	bucketLayers    = []byte("layers")    // chain ID → Layer
	bucketSnapshots = []byte("snapshots") // container snapshot key → top chain ID
)

// metaSchemaKey, in the images bucket (image IDs all start with "sha256:"),
// holds the version of the layout below. A newer version is refused without
// a write: an older berthd must not rewrite what it cannot read.
const metaSchemaKey, metaSchemaVersion = "schema", 1

// meta is the image index in bbolt. Transactions span images, names and layers,
// so an image is never visible without its layers, nor a name without its image.
type meta struct {
	db *bolt.DB
	// update commits a write transaction; op names it ("image", "layer",
	// "delete image", "drop layers"). It is db.Update, and a seam where
	// tests inject a failed commit (a full disk) at one kind of write.
	update func(op string, fn func(*bolt.Tx) error) error
}

func openMeta(path string) (*meta, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open image index %s: %w", path, err)
	}
	// Check in a read-only transaction first, so that a refused index is
	// not written to at all.
	err = db.View(checkSchema)
	if err == nil {
		err = db.Update(initSchema)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("image index %s: %w", path, err)
	}
	return &meta{db: db, update: func(_ string, fn func(*bolt.Tx) error) error { return db.Update(fn) }}, nil
}

// checkSchema refuses an index written by a newer (or unknown) layout. An
// index without the key is one written before the key existed: version 1.
func checkSchema(tx *bolt.Tx) error {
	b := tx.Bucket(bucketImages)
	if b == nil {
		return nil
	}
	v := b.Get([]byte(metaSchemaKey))
	if v == nil {
		return nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 {
		return fmt.Errorf("schema %q is not a version this berthd knows: %w", v, errdefs.ErrFailedPrecondition)
	}
	if n > metaSchemaVersion {
		return fmt.Errorf("schema %d is newer than this berthd's %d (written by a newer berthd; upgrade, or move the images root away): %w",
			n, metaSchemaVersion, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// initSchema creates the buckets and writes the schema version, on a new
// index and on one from before the key was written.
func initSchema(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketImages, bucketNames, bucketLayers, bucketSnapshots} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	b := tx.Bucket(bucketImages)
	if b.Get([]byte(metaSchemaKey)) != nil {
		return nil
	}
	return b.Put([]byte(metaSchemaKey), []byte(strconv.Itoa(metaSchemaVersion)))
}

func (m *meta) close() error { return m.db.Close() }

func getJSON[T any](b *bolt.Bucket, key string) (*T, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return nil, errdefs.ErrNotFound
	}
	var out T
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return &out, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

// commitImage records the image, whose layers are already recorded, and points
// names at it. A name that pointed at another image moves (that image keeps
// its other names, or none: it stays until removed, as with the peers). An
// image pulled again merges its names into the existing record.
func (m *meta) commitImage(img *Image, names []string) (*Image, error) {
	var stored *Image
	err := m.update("image", func(tx *bolt.Tx) error {
		rec, err := getJSON[Image](tx.Bucket(bucketImages), img.ID)
		if errors.Is(err, errdefs.ErrNotFound) {
			rec, err = img, nil
		}
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := moveName(tx, n, rec); err != nil {
				return err
			}
		}
		stored = rec
		return putJSON(tx.Bucket(bucketImages), rec.ID, rec)
	})
	return stored, err
}

// moveName points name at rec, taking it away from the image that had it.
func moveName(tx *bolt.Tx, name string, rec *Image) error {
	names := tx.Bucket(bucketNames)
	if old := names.Get([]byte(name)); old != nil && string(old) != rec.ID {
		prev, err := getJSON[Image](tx.Bucket(bucketImages), string(old))
		if err == nil {
			prev.dropName(name)
			if err := putJSON(tx.Bucket(bucketImages), prev.ID, prev); err != nil {
				return err
			}
		}
	}
	rec.addName(name)
	return names.Put([]byte(name), []byte(rec.ID))
}

func (img *Image) addName(name string) {
	list := &img.RepoTags
	if isDigestRef(name) {
		list = &img.RepoDigests
	}
	if !slices.Contains(*list, name) {
		*list = append(*list, name)
		slices.Sort(*list)
	}
}

func (img *Image) dropName(name string) {
	img.RepoTags = slices.DeleteFunc(img.RepoTags, func(n string) bool { return n == name })
	img.RepoDigests = slices.DeleteFunc(img.RepoDigests, func(n string) bool { return n == name })
}

// find resolves a lookup to an image record, or ErrNotFound.
func (m *meta) find(l lookup) (*Image, error) {
	var img *Image
	err := m.db.View(func(tx *bolt.Tx) error {
		id := l.key
		if l.kind == byName {
			v := tx.Bucket(bucketNames).Get([]byte(l.key))
			if v == nil && l.idPrefix != "" {
				return findByPrefix(tx, l.idPrefix, &img)
			}
			if v == nil {
				return fmt.Errorf("image %q: %w", l.key, errdefs.ErrNotFound)
			}
			id = string(v)
		}
		rec, err := getJSON[Image](tx.Bucket(bucketImages), id)
		if err != nil {
			return fmt.Errorf("image %q: %w", id, err)
		}
		img = rec
		return nil
	})
	return img, err
}

// findByPrefix finds the one image whose ID hex starts with prefix.
func findByPrefix(tx *bolt.Tx, prefix string, out **Image) error {
	c := tx.Bucket(bucketImages).Cursor()
	full := []byte("sha256:" + prefix)
	var match []byte
	for k, v := c.Seek(full); k != nil && strings.HasPrefix(string(k), string(full)); k, v = c.Next() {
		if match != nil {
			return fmt.Errorf("image ID prefix %q is ambiguous: %w", prefix, errdefs.ErrNotFound)
		}
		match = v
	}
	if match == nil {
		return fmt.Errorf("image %q: %w", prefix, errdefs.ErrNotFound)
	}
	var img Image
	if err := json.Unmarshal(match, &img); err != nil {
		return err
	}
	*out = &img
	return nil
}

// list returns every image record.
func (m *meta) list() ([]*Image, error) {
	var out []*Image
	err := m.db.View(func(tx *bolt.Tx) error {
		return forEachImage(tx, func(img *Image) { out = append(out, img) })
	})
	return out, err
}

// deleteImage removes the image and all its names. A missing image is ErrNotFound.
func (m *meta) deleteImage(id string) error {
	return m.update("delete image", func(tx *bolt.Tx) error {
		img, err := getJSON[Image](tx.Bucket(bucketImages), id)
		if err != nil {
			return fmt.Errorf("image %q: %w", id, err)
		}
		for _, n := range append(slices.Clone(img.RepoTags), img.RepoDigests...) {
			if err := tx.Bucket(bucketNames).Delete([]byte(n)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketImages).Delete([]byte(id))
	})
}

// layer returns a layer's record, or ErrNotFound.
func (m *meta) layer(chainID digest.Digest) (*Layer, error) {
	var l *Layer
	err := m.db.View(func(tx *bolt.Tx) error {
		var err error
		l, err = getJSON[Layer](tx.Bucket(bucketLayers), chainID.String())
		return err
	})
	return l, err
}

// dropUnusedLayers deletes, in one transaction, the records of layers that no
// image, no container snapshot and no entry of keep (the pulls' leases) uses,
// directly or as a parent, and returns them so the caller can remove their
// directories. The records go first: a crash after this leaves directories
// without records, which start-up removes.
func (m *meta) dropUnusedLayers(keep map[digest.Digest]bool) ([]Layer, error) {
	var unused []Layer
	err := m.update("drop layers", func(tx *bolt.Tx) error {
		used, err := usedLayers(tx, keep)
		if err != nil {
			return err
		}
		layers := tx.Bucket(bucketLayers)
		err = layers.ForEach(func(k, v []byte) error {
			if used[string(k)] {
				return nil
			}
			var l Layer
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			unused = append(unused, l)
			return nil
		})
		if err != nil {
			return err
		}
		for _, l := range unused {
			if err := layers.Delete([]byte(l.ChainID.String())); err != nil {
				return err
			}
		}
		return nil
	})
	return unused, err
}

// usedLayers returns the chain IDs that images, container snapshots and keep
// use, with all their parents.
func usedLayers(tx *bolt.Tx, keep map[digest.Digest]bool) (map[string]bool, error) {
	used := map[string]bool{}
	layers := tx.Bucket(bucketLayers)
	markChain := func(top string) {
		for id := top; id != "" && !used[id]; {
			used[id] = true
			l, err := getJSON[Layer](layers, id)
			if err != nil {
				return
			}
			id = l.Parent.String()
		}
	}
	for d := range keep {
		markChain(d.String())
	}
	err := forEachImage(tx, func(img *Image) {
		for _, l := range img.Layers {
			markChain(l.String())
		}
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketSnapshots).ForEach(func(_, v []byte) error {
		markChain(string(v))
		return nil
	})
	return used, err
}

func forEachImage(tx *bolt.Tx, fn func(*Image)) error {
	return tx.Bucket(bucketImages).ForEach(func(k, v []byte) error {
		if string(k) == metaSchemaKey {
			return nil
		}
		var img Image
		if err := json.Unmarshal(v, &img); err != nil {
			return fmt.Errorf("decode image %s: %w", k, err)
		}
		fn(&img)
		return nil
	})
}

// layers returns every layer record.
func (m *meta) layers() ([]Layer, error) {
	var out []Layer
	err := m.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLayers).ForEach(func(k, v []byte) error {
			var l Layer
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("decode layer %s: %w", k, err)
			}
			out = append(out, l)
			return nil
		})
	})
	return out, err
}

// putLayer records a complete layer.
func (m *meta) putLayer(l *Layer) error {
	return m.update("layer", func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketLayers), l.ChainID.String(), l)
	})
}
