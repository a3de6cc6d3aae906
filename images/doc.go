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
// Locking: no lock is held while bytes flow or disks sync. A pull leases what
// it stores (manifest, config, layer blobs, layers; see lease.go) and GC keeps
// whatever a lease names, so the pull can download and unpack with no lock
// and commit its image record when done. gcLock is held exclusively by GC
// (Remove, start-up), which drops records, renames the dirs it frees aside
// and deletes blobs, then removes the dirs' files after releasing it; it is
// held shared only for short store operations (taking a lease, preparing a
// snapshot). Two pulls of the same reference share one download (see
// pullgroup.go).
package images
