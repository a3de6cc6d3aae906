package images

// Recovery of the image store at start-up. Assumptions:
//   - a committed blob (blobs/) was verified before its rename; ingest/ holds
//     only unfinished downloads;
//   - a layer dir named by its chain ID was complete and synced when renamed;
//     layers/tmp-* are unfinished unpacks or dirs GC was removing (tmp-gc-*);
//   - bbolt transactions are atomic: an image record and its layer records
//     exist together or not at all.
// So recovery deletes unfinished work, drops images whose layer dirs vanished
// (they can be pulled again), removes dirs that no record owns, and collects
// what no image uses.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

const tmpLayerPrefix = "tmp-"

func (s *Service) recover(ctx context.Context) error {
	if err := s.content.CleanIngest(ctx); err != nil {
		return err
	}
	if err := s.dropBrokenImages(ctx); err != nil {
		return err
	}
	if err := s.removeOrphanLayerDirs(ctx); err != nil {
		return err
	}
	if err := s.reconcileSnapshots(ctx); err != nil {
		return err
	}
	return s.gc(ctx)
}

// dropBrokenImages deletes image records whose layer dirs are missing.
func (s *Service) dropBrokenImages(ctx context.Context) error {
	imgs, err := s.meta.list()
	if err != nil {
		return err
	}
	for _, img := range imgs {
		for _, l := range img.Layers {
			if _, err := os.Stat(s.layerDir(l)); err == nil {
				continue
			}
			log.G(ctx).WithFields(log.Fields{"image": img.ID, "layer": l}).Warn("image lost a layer dir; dropping its record so it can be pulled again")
			if err := s.meta.deleteImage(img.ID); err != nil {
				return err
			}
			break
		}
	}
	return nil
}

// removeOrphanLayerDirs removes unfinished unpacks and layer dirs without a record.
func (s *Service) removeOrphanLayerDirs(ctx context.Context) error {
	entries, err := os.ReadDir(s.layersDir)
	if err != nil {
		return fmt.Errorf("read layers dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, tmpLayerPrefix) {
			id := digest.Digest(strings.Replace(name, "-", ":", 1))
			if id.Validate() == nil {
				if _, err := s.meta.layer(id); err == nil {
					continue
				}
			}
		}
		log.G(ctx).WithField("dir", name).Info("removing unowned layer dir")
		if err := removeLayerDir(filepath.Join(s.layersDir, name)); err != nil {
			return err
		}
	}
	return nil
}

// reconcileSnapshots removes snapshot dirs without a record and records without a dir.
func (s *Service) reconcileSnapshots(ctx context.Context) error {
	entries, err := os.ReadDir(s.snapshotsDir)
	if err != nil {
		return fmt.Errorf("read snapshots dir: %w", err)
	}
	onDisk := map[string]bool{}
	for _, e := range entries {
		onDisk[e.Name()] = true
	}
	return s.meta.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		var gone [][]byte
		if err := b.ForEach(func(k, _ []byte) error {
			if !onDisk[string(k)] {
				gone = append(gone, k)
			}
			delete(onDisk, string(k))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range gone {
			log.G(ctx).WithField("snapshot", string(k)).Warn("snapshot dir vanished; dropping its record")
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		for name := range onDisk {
			log.G(ctx).WithField("snapshot", name).Info("removing unowned snapshot dir")
			if err := os.RemoveAll(filepath.Join(s.snapshotsDir, name)); err != nil {
				return err
			}
		}
		return nil
	})
}

// collectBlobs deletes blobs that no image, no layer record and no lease
// uses (manifests, configs, layer blobs). The caller holds gcLock exclusively.
func (s *Service) collectBlobs(ctx context.Context, leased map[digest.Digest]bool) error {
	used := map[digest.Digest]bool{}
	maps.Copy(used, leased)
	err := s.meta.db.View(func(tx *bolt.Tx) error {
		if err := forEachImage(tx, func(img *Image) {
			used[img.Manifest] = true
			used[digest.Digest(img.ID)] = true
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketLayers).ForEach(func(_, v []byte) error {
			var l Layer
			if err := json.Unmarshal(v, &l); err != nil {
				return err
			}
			used[l.Blob] = true
			return nil
		})
	})
	if err != nil {
		return err
	}
	var unused []digest.Digest
	if err := s.content.Walk(func(d digest.Digest) error {
		if !used[d] {
			unused = append(unused, d)
		}
		return nil
	}); err != nil {
		return err
	}
	var errs []error
	for _, d := range unused {
		if err := s.content.Delete(ctx, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeLayerDir removes a layer dir (berthd runs as root, so modes inside
// the layer do not stand in the way).
func removeLayerDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove layer dir %s: %w", dir, err)
	}
	return nil
}
