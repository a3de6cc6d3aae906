package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-cri/berth/images/remote"
	"github.com/berth-cri/berth/images/snapshot"
)

// ensureLayer makes layer i (whose record l the caller filled with chain ID,
// parent, diff ID and blob) unpacked under layers/<chain id>. A layer already
// unpacked is reused; a blob already stored is read locally; otherwise the
// blob streams from the registry into the content store and, in the same
// pass, through the decompressor into the unpacker. Both digests are checked
// before the layer is committed (see commitLayer). The caller's lease keeps
// the layer and its blob from GC; no lock is held here.
func (s *Service) ensureLayer(ctx context.Context, r *remote.Resolved, i int, l *Layer, watch *progressWatch) error {
	if rec, err := s.meta.layer(l.ChainID); err == nil {
		if _, err := os.Stat(s.layerDir(l.ChainID)); err == nil {
			*l = *rec
			return nil
		}
	}
	tmp, err := os.MkdirTemp(s.layersDir, tmpLayerPrefix)
	if err != nil {
		return fmt.Errorf("layer %s: %w", l.DiffID, err)
	}
	defer removeLayerDir(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	src, commit, err := s.layerSource(ctx, r, i, watch)
	if err != nil {
		return err
	}
	defer src.Close()
	stats, err := unpack(ctx, tmp, src, r.Layers[i].MediaType, l.DiffID)
	if err != nil {
		return fmt.Errorf("layer %s (blob %s): %w", l.DiffID, l.Blob, err)
	}
	if err := commit(); err != nil {
		return err
	}
	l.Size, l.Inodes = stats.Bytes, stats.Inodes
	if err := s.commitLayer(tmp, l); err != nil {
		return err
	}
	log.G(ctx).WithFields(log.Fields{"layer": l.ChainID, "bytes": l.Size}).Debug("unpacked layer")
	return nil
}

// commitLayer makes the complete layer in tmp durable, then visible, then
// recorded, in that order, so that after a power loss a record never names
// a layer whose files are not on disk: the files are synced (syncfs), the
// dir renamed into place, the rename synced (fsync of layers/), and only
// then is the record committed. It is recorded at once, so a complete layer
// always has a record: if the pull fails later, a retry reuses it, and GC
// (Remove, or the next start) collects it if nothing does. A dir renamed
// whose rename then fails to sync is left unrecorded: a retry adopts it
// (syncing it again), start-up removes it otherwise; removing it here could
// pull it from under a concurrent pull that found it in place.
func (s *Service) commitLayer(tmp string, l *Layer) error {
	if err := s.disk.fs(tmp); err != nil {
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	// A concurrent pull of another image may have committed the same
	// layer first; its dir is as good as ours (ours is then removed).
	if err := os.Rename(tmp, s.layerDir(l.ChainID)); err != nil && !errors.Is(err, os.ErrExist) && !isNotEmpty(err) {
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	if err := s.disk.dir(s.layersDir); err != nil {
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	return s.meta.putLayer(l)
}

// layerSource returns the compressed blob to read: the stored copy, or the
// registry's stream teed into the content store; commit verifies and stores
// the teed copy once the stream has been read to its end.
func (s *Service) layerSource(ctx context.Context, r *remote.Resolved, i int, watch *progressWatch) (io.ReadCloser, func() error, error) {
	desc := r.Layers[i]
	if s.content.Has(desc.Digest) {
		f, err := s.content.Open(desc.Digest)
		return f, func() error { return nil }, err
	}
	w, err := s.content.Writer(ctx, desc.Digest, desc.Size)
	if err != nil {
		return nil, nil, err
	}
	body, err := r.Fetch(ctx, i)
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	progress := watch.reader(body)
	src := &teeCloser{Reader: io.TeeReader(progress, w), closers: []io.Closer{progress, body, w}}
	return src, func() error { return w.Commit(ctx) }, nil
}

type teeCloser struct {
	io.Reader
	closers []io.Closer
}

func (t *teeCloser) Close() error {
	var errs []error
	for _, c := range t.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// unpack decompresses src as mediaType says (or as its magic bytes say),
// unpacks it into dir, reads both streams to their ends and checks the diff ID.
func unpack(ctx context.Context, dir string, src io.Reader, mediaType string, diffID digest.Digest) (snapshot.ApplyStats, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	tarStream, closeFn, err := decompress(br, mediaType)
	if err != nil {
		return snapshot.ApplyStats{}, err
	}
	defer closeFn()
	verifier := diffID.Verifier()
	tee := io.TeeReader(tarStream, verifier)
	stats, err := snapshot.Apply(ctx, dir, tee, snapshot.ApplyOptions{})
	if err != nil {
		return stats, err
	}
	// Tar padding after the end marker belongs to the diff ID; trailing
	// compressed bytes belong to the blob digest.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return stats, err
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return stats, err
	}
	if !verifier.Verified() {
		return stats, fmt.Errorf("uncompressed content does not match diff ID %s: %w", diffID, errdefs.ErrDataLoss)
	}
	return stats, nil
}

func decompress(br *bufio.Reader, mediaType string) (io.Reader, func(), error) {
	kind := compressionOf(mediaType)
	if kind == "" {
		magic, _ := br.Peek(4)
		switch {
		case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
			kind = "gzip"
		case len(magic) == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
			kind = "zstd"
		default:
			kind = "none"
		}
	}
	switch kind {
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip layer: %w", err)
		}
		zr.Multistream(true)
		return zr, func() { zr.Close() }, nil
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(false))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd layer: %w", err)
		}
		return zr, zr.Close, nil
	default:
		return br, func() {}, nil
	}
}

// compressionOf tells the compression from a layer media type; "" when the
// media type does not say (then the magic bytes decide).
func compressionOf(mediaType string) string {
	switch {
	case strings.HasSuffix(mediaType, "+gzip"), strings.HasSuffix(mediaType, ".tar.gzip"):
		return "gzip"
	case strings.HasSuffix(mediaType, "+zstd"):
		return "zstd"
	case strings.HasSuffix(mediaType, ".tar"), strings.HasSuffix(mediaType, "layer.v1.tar"):
		return "none"
	}
	return ""
}

func isNotEmpty(err error) bool {
	var lerr *os.LinkError
	return errors.As(err, &lerr) && strings.Contains(lerr.Err.Error(), "directory not empty")
}
