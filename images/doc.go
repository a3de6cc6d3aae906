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
// are verified; a layer dir is renamed into place only when fully unpacked; an
// image record (with its layer records) is committed in one bbolt transaction
// only after every blob and layer exists. So an interrupted pull leaves no
// record and no half layer, and start-up removes leftover ingest and tmp dirs
// and layer dirs that no record owns.
//
// Locking: pulls hold gcLock shared (many pulls run at once); Remove and GC
// hold it exclusively, so a layer a pull is about to reuse cannot vanish under
// it. Two pulls of the same reference share one download (see pull.go).
package images
