package images

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-cri/berth/images/remote"
	"github.com/berth-cri/berth/images/snapshot"
)

// applyFunc unpacks an uncompressed layer tar into dir (snapshot.Apply).
type applyFunc func(ctx context.Context, dir string, r io.Reader, opts snapshot.ApplyOptions) (snapshot.ApplyStats, error)

// ensureLayer makes layer i (whose record l the caller filled with chain ID,
// parent, diff ID and blob) unpacked under layers/<chain id>. A layer already
// unpacked is reused; a layer that another pull is making is waited for
// (one download and one unpack per chain ID, however many pulls need it);
// otherwise this pull makes it (makeLayer). The caller's lease keeps the
// layer and its blob from GC; no lock is held here.
func (s *Service) ensureLayer(ctx context.Context, r *remote.Resolved, i int, l *Layer, p *pullProgress) error {
	if rec, ok := s.unpacked(l.ChainID); ok {
		*l = *rec
		p.set(i, layerReused)
		s.counters.layer("reused")
		return nil
	}
	p.set(i, layerActive)
	var how string
	rec, joined, err := s.layerFlights.join(ctx, l.ChainID.String(), func(ctx context.Context) (*Layer, error) {
		// A run that ended just before this one started may have made it.
		if rec, ok := s.unpacked(l.ChainID); ok {
			how = "reused"
			return rec, nil
		}
		made := *l
		var err error
		how, err = s.makeLayer(ctx, r, i, &made)
		return &made, err
	})
	switch {
	case err != nil:
		p.set(i, layerFailed)
		if !joined {
			s.counters.layer("failed")
		}
		return err
	case joined:
		how = "shared"
	}
	*l = *rec
	p.done(i, how == "fetched" || how == "shared")
	s.counters.layer(how)
	return nil
}

// unpacked returns the record of a layer that is recorded and in place.
func (s *Service) unpacked(chainID digest.Digest) (*Layer, bool) {
	rec, err := s.meta.layer(chainID)
	if err != nil {
		return nil, false
	}
	if _, err := os.Stat(s.layerDir(chainID)); err != nil {
		return nil, false
	}
	return rec, true
}

// makeLayer unpacks layer i into a tmp dir and commits it. A blob already
// stored is read locally ("unpacked"); otherwise it is downloaded into the
// content store and, as its bytes arrive, read behind the download through
// the decompressor into the unpacker ("fetched"). Both digests are checked
// before the layer is committed (see commitLayer). The layer's own progress
// watch cancels it when its bytes stall or crawl. It runs once per chain ID
// at a time (see ensureLayer), under its own lease, so it does not depend on
// the pull that started it staying.
func (s *Service) makeLayer(ctx context.Context, r *remote.Resolved, i int, l *Layer) (how string, retErr error) {
	release := s.lease([]digest.Digest{l.ChainID, l.Blob})
	defer release()
	start := time.Now()
	defer func() {
		result := "ok"
		if retErr != nil {
			result = "failed"
		}
		s.counters.layerDone(result, time.Since(start))
	}()
	tmp, err := os.MkdirTemp(s.layersDir, tmpLayerPrefix)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", l.DiffID, err)
	}
	defer removeLayerDir(tmp) // a no-op once renamed
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	lctx, watch := watchProgress(ctx, s.opts.ProgressTimeout, rateLimit{minRate: s.opts.MinRate, window: s.opts.MinRateWindow})
	defer watch.stop()
	watch.onRead = func(n int) { s.counters.bytes.Add(uint64(n)) }
	src, finish, how, err := s.layerSource(lctx, r, i, l.ChainID, watch)
	if err == nil {
		defer src.Close()
		var stats snapshot.ApplyStats
		stats, err = unpack(lctx, s.apply, tmp, src, r.Layers[i].MediaType, l.DiffID)
		l.Size, l.Inodes = stats.Bytes, stats.Inodes
		if err == nil {
			err = finish()
		}
	}
	if err != nil {
		if lctx.Err() != nil && ctx.Err() == nil {
			err = context.Cause(lctx) // the stall or rate check says more than "context canceled"
		}
		return "", fmt.Errorf("layer %s (blob %s): %w", l.DiffID, l.Blob, err)
	}
	if err := s.commitLayer(tmp, l); err != nil {
		return "", err
	}
	log.G(ctx).WithFields(log.Fields{"layer": l.ChainID, "bytes": l.Size, "how": how,
		"duration": time.Since(start).Round(time.Millisecond).String()}).Debug("unpacked layer")
	return how, nil
}

// commitLayer makes the complete layer in tmp durable, then visible, then
// recorded, in that order, so that after a power loss a record never names
// a layer whose files are not on disk: the files are synced (syncfs), the
// dir renamed into place, the rename synced (fsync of layers/), and only
// then is the record committed. It is recorded at once, so a complete layer
// always has a record: if the pull fails later, a retry reuses it, and GC
// (Remove, or the next start) collects it if nothing does. A dir renamed
// whose rename or record then fails (a full disk, an I/O error) is removed
// again, so that no layer dir goes unaccounted (ImageFsInfo counts layers
// by their records); nothing else can be using it, as one chain ID is made
// by one run at a time (layerFlights) and nothing uses a layer without its
// record. A crash in between leaves it to start-up, which removes dirs
// that no record owns.
func (s *Service) commitLayer(tmp string, l *Layer) error {
	if err := s.disk.fs(tmp); err != nil {
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	// A dir left in place by an earlier run that crashed before its
	// record is as good as ours (ours is then removed).
	dir := s.layerDir(l.ChainID)
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) && !isNotEmpty(err) {
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	err := s.disk.dir(s.layersDir)
	if err == nil {
		err = s.meta.putLayer(l)
	}
	if err != nil {
		if t, terr := s.moveToTrash(dir); terr == nil {
			removeLayerDir(t)
		}
		return fmt.Errorf("commit layer %s: %w", l.ChainID, err)
	}
	return nil
}

// layerSource returns the compressed blob to read and finish, which checks
// and stores it once it has been read to its end: the stored copy, or a
// download into the content store (see download), or, for a blob whose
// size the manifest does not give, the registry's one stream teed into it.
func (s *Service) layerSource(ctx context.Context, r *remote.Resolved, i int, chainID digest.Digest, watch *progressWatch) (io.ReadCloser, func() error, string, error) {
	desc := r.Layers[i]
	if s.content.Has(desc.Digest) {
		f, err := s.content.Open(desc.Digest)
		return f, func() error { return nil }, "unpacked", err
	}
	if desc.Size <= 0 {
		src, finish, err := s.streamSource(ctx, r, i, watch)
		return src, finish, "fetched", err
	}
	src, finish, err := s.download(ctx, r, i, chainID, watch)
	return src, finish, "fetched", err
}

// download starts fetching layer i's blob into an Ingest (in ranges over
// several connections when it is large, see downloader) and returns the
// reader that follows it; finish waits for the download and commits the
// blob (size and digest checked); Close stops the download if it still
// runs and removes whatever was not committed.
func (s *Service) download(ctx context.Context, r *remote.Resolved, i int, chainID digest.Digest, watch *progressWatch) (io.ReadCloser, func() error, error) {
	desc := r.Layers[i]
	in, err := s.content.Ingest(desc.Digest, desc.Size)
	if err != nil {
		return nil, nil, err
	}
	d := &downloader{
		fetch: func(ctx context.Context, start, end int64) (*remote.BlobPart, error) {
			return r.FetchRange(ctx, i, start, end)
		},
		in: in, blob: desc.Digest, plan: s.fetchPlan(), watch: watch, resumed: &s.counters.resumed,
	}
	dctx, cancel := context.WithCancel(ctx)
	untrack := s.transfers.track(chainID, desc.Size, watch)
	done := make(chan error, 1)
	go func() {
		err := d.run(dctx)
		in.Fail(err)
		done <- err
	}()
	var once sync.Once
	var dlErr error
	wait := func() error {
		once.Do(func() { dlErr = <-done; untrack() })
		return dlErr
	}
	finish := func() error {
		if err := wait(); err != nil {
			return err
		}
		return in.Commit(ctx)
	}
	src := &funcCloser{Reader: in.Reader(ctx), close: func() error {
		cancel()
		wait()
		return in.Close()
	}}
	return src, finish, nil
}

type funcCloser struct {
	io.Reader
	close func() error
}

func (f *funcCloser) Close() error { return f.close() }

// streamSource is the registry's stream teed into the content store.
func (s *Service) streamSource(ctx context.Context, r *remote.Resolved, i int, watch *progressWatch) (io.ReadCloser, func() error, error) {
	desc := r.Layers[i]
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
// unpacks it into dir, reads both streams to their ends and checks the diff
// ID. Decompression and the diff ID's hash run in a goroutine a few MiB
// ahead of the unpacker (readAhead), which runs in the caller's.
func unpack(ctx context.Context, apply applyFunc, dir string, src io.Reader, mediaType string, diffID digest.Digest) (snapshot.ApplyStats, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	tarStream, closeFn, err := decompress(br, mediaType)
	if err != nil {
		return snapshot.ApplyStats{}, err
	}
	verifier := diffID.Verifier()
	ra := newReadAhead(io.TeeReader(tarStream, verifier), readAheadSize, readAheadBuffers, closeFn)
	defer ra.Close()
	stats, err := apply(ctx, dir, ra, snapshot.ApplyOptions{})
	if err != nil {
		return stats, err
	}
	// Tar padding after the end marker belongs to the diff ID; trailing
	// compressed bytes belong to the blob digest. Once readAhead is
	// drained, its goroutine is done with br.
	if _, err := io.Copy(io.Discard, ra); err != nil {
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

// The unpacker's read-ahead: 4 MiB of uncompressed tar per layer.
const readAheadSize, readAheadBuffers = 1 << 20, 4

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
