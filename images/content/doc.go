// Package content is Berth's content-addressed blob store: manifests, configs
// and layer blobs, each stored under its digest once verified.
//
// Layout under the root given to New:
//
//	blobs/sha256/<hex>   committed blobs, read-only (0444)
//	ingest/<random>      blobs being written; removed by Abort, or by CleanIngest at start-up
//
// Bytes are never trusted: a Writer hashes what it is given, and Commit checks
// the size and digest before renaming the ingest file into blobs/ (fsync of the
// file, rename, fsync of the dir). A crash leaves at worst a file in ingest/.
//
// Example:
//
//	w, err := store.Writer(ctx, desc.Digest, desc.Size)
//	if err != nil { return err }
//	defer w.Close()             // aborts unless committed
//	if _, err := io.Copy(w, body); err != nil { return err }
//	return w.Commit(ctx)        // verified, then visible
//
// A large blob downloaded in ranges over several connections goes through an
// Ingest instead: the ranges are written at their offsets in any order, one
// reader follows behind in order (hashing, and feeding the unpacker as the
// bytes arrive), and Commit checks size and digest as above. The ingest file
// is the buffer, so memory does not grow with the blob.
//
// Every write reaches the disk through the FS seam (an *os.File by
// default); tests replace it to inject ENOSPC or EDQUOT at any write, and a
// failed write leaves nothing once the writer is closed.
//
// Locking: writers of the same digest never share a file (each has its own
// ingest file) and rename is atomic, so concurrent writers need no lock; the
// usage counters are atomic. Deleting a blob while another goroutine commits
// the same digest is the caller's to prevent (the image service's pull
// leases and GC lock).
package content
