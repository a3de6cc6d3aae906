// Package images is Berth's image service: pulls from OCI registries, the
// image index, listing, status, removal, disk usage and garbage collection of
// layers and blobs, and the writable snapshots that containers run on.
//
// On-disk layout under the images root (default /var/lib/berth/images):
//
//	meta.db                 bbolt index: images, names (tags and repo digests), layers, snapshots
//	blobs/sha256/<hex>      manifests, configs and layer blobs (images/content)
//	ingest/                 blobs being downloaded (removed at start-up)
//	layers/<algo>-<hex>/    one unpacked layer per chain ID, read-only once committed
//	layers/tmp-*/           layers being unpacked (removed at start-up)
//	snapshots/<key>/        a container's writable layer: upper/ and work/
//
// Crash safety: a blob is renamed into blobs/ only after its digest and size
// are verified; a layer dir is renamed into place only when fully unpacked and
// synced to disk, and recorded only after the rename is synced too. An image
// record is committed only after every blob and layer exists. So an
// interrupted pull leaves no image record and no half layer (complete layers
// keep their records until GC), and start-up removes leftover ingest and tmp
// dirs and layer dirs that no record owns.
//
// Pulls: the layers of a pull are made in parallel (MaxConcurrentDownloads),
// each into a dir of its own, in whatever order their bytes arrive; only the
// records keep the order (chain IDs and parents come from the config). A
// layer's blob is downloaded into an ingest file (content.Ingest), a large
// one in ranges over several connections (fetch.go), and read back in order
// behind the download, hashed, decompressed (a goroutine a few MiB ahead)
// and unpacked, so download, decompression and unpacking overlap and memory
// stays bounded whatever the size: the file is the buffer. A connection that
// drops, or idles for half the stall timeout, is resumed from the byte where
// it stopped; a registry that ignores Range answers the first request with
// the whole blob, which is then the one stream. The blob's digest and size
// are checked on the whole before it is committed, the diff ID before the
// layer is. Each layer download has its own stall timeout and minimum rate
// (progress.go). One chain ID is made by one run at a time, shared by every
// pull that needs it (layerFlights): pulls of images with layers in common
// fetch each once. A running pull logs its progress at a steady pace
// (pullprogress.go) and the service counts pulls, layers, bytes and
// durations (PullStats, for cri to publish).
//
// A full disk (ENOSPC, EDQUOT) at any write fails the pull with
// errdefs.ErrResourceExhausted naming the image (diskfull.go). It leaves no
// partial blob (ingest files are removed), no partial layer (tmp dirs are
// removed; a dir renamed whose sync or record fails is removed again), and no
// image record; complete layers keep their records for a retry, so the usage
// reported from records (ImageFsInfo) stays true. The writes go through
// seams that tests fault: content.FS (blob ingest), Service.apply (layer
// unpack), diskSync (layer syncs) and meta.update (records).
//
// Locking: no lock is held while bytes flow or disks sync. A pull leases what
// it stores (manifest, config, layer blobs, layers; see lease.go) and GC keeps
// whatever a lease names, so the pull can download and unpack with no lock
// and commit its image record when done. gcLock is held exclusively by GC
// (Remove, start-up), which drops records, renames the dirs it frees aside
// and deletes blobs, then removes the dirs' files after releasing it; it is
// held shared only for short store operations (taking a lease, preparing a
// snapshot). Two pulls of the same reference share one run, and two runs
// that need the same layer share its download and unpack (see pullgroup.go);
// a layer's run holds its own lease, so it does not depend on the pull that
// started it.
package images
