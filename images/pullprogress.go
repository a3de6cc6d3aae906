package images

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"

	"github.com/berth-cri/berth/images/remote"
)

// defaultProgressInterval is how often a running pull logs its progress.
const defaultProgressInterval = 10 * time.Second

// transfers are the layer downloads running, by chain ID: whichever pull
// runs a download, every pull that waits for the layer shows its bytes.
type transfers struct {
	mu sync.Mutex
	m  map[digest.Digest]*progressWatch
}

func (t *transfers) track(chainID digest.Digest, size int64, w *progressWatch) (untrack func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[digest.Digest]*progressWatch{}
	}
	t.m[chainID] = w
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.m[chainID] == w {
			delete(t.m, chainID)
		}
	}
}

// bytes returns how much of a layer's blob its running download has read.
func (t *transfers) bytes(chainID digest.Digest) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.m[chainID]
	if !ok {
		return 0, false
	}
	return w.bytes.Load(), true
}

type layerState int

const (
	layerWaiting layerState = iota // for a download slot
	layerActive                    // downloading, unpacking, or waiting for another pull's download
	layerDone
	layerReused // already unpacked
	layerFailed
)

// pullProgress is what one pull has done, for its progress lines.
type pullProgress struct {
	transfers *transfers
	start     time.Time

	mu     sync.Mutex
	layers []progressLayer
	last   int64 // fetched bytes at the last line
	lastAt time.Time
}

type progressLayer struct {
	chainID, blob digest.Digest
	size          int64 // compressed
	state         layerState
	fetched       int64 // bytes read from the registry for it, as last seen
}

func newPullProgress(t *transfers, start time.Time, r *remote.Resolved, chainIDs []digest.Digest) *pullProgress {
	p := &pullProgress{transfers: t, start: start, lastAt: time.Now()}
	for i, id := range chainIDs {
		p.layers = append(p.layers, progressLayer{chainID: id, blob: r.Layers[i].Digest, size: r.Layers[i].Size})
	}
	return p
}

func (p *pullProgress) set(i int, st layerState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.layers[i].state = st
}

// done marks layer i done; fetched: its blob came from the registry.
func (p *pullProgress) done(i int, fetched bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := &p.layers[i]
	l.state = layerDone
	if fetched {
		l.fetched = l.size
	}
}

// fetched returns the bytes this pull's layers read from registries.
func (p *pullProgress) fetched() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, l := range p.layers {
		n += l.fetched
	}
	return n
}

// progressLine is a snapshot of a pull's progress.
type progressLine struct {
	done, total int64 // compressed bytes of layers done or read so far, of all layers
	fetched     int64 // bytes read from registries
	layersDone  int
	rate        float64 // fetched bytes/s since the last line
	fetching    []string
}

func (p *pullProgress) line(now time.Time) progressLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pl progressLine
	for i := range p.layers {
		l := &p.layers[i]
		pl.total += l.size
		switch l.state {
		case layerDone, layerReused:
			pl.done += l.size
			pl.layersDone++
		case layerActive:
			if b, ok := p.transfers.bytes(l.chainID); ok {
				l.fetched = b
				pl.done += b
				pl.fetching = append(pl.fetching, fmt.Sprintf("%s %s of %s", short(l.blob), humanBytes(b), humanBytes(l.size)))
			}
		}
		pl.fetched += l.fetched
	}
	if dt := now.Sub(p.lastAt).Seconds(); dt > 0 {
		pl.rate = float64(pl.fetched-p.last) / dt
	}
	p.last, p.lastAt = pl.fetched, now
	return pl
}

// report logs the pull's progress every interval until stop.
func (p *pullProgress) report(ctx context.Context, interval time.Duration) (stop func()) {
	if interval <= 0 {
		interval = defaultProgressInterval
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				pl := p.line(now)
				log.G(ctx).WithFields(log.Fields{
					"progress": fmt.Sprintf("%s of %s", humanBytes(pl.done), humanBytes(pl.total)),
					"bytes":    pl.done,
					"total":    pl.total,
					"rate":     humanBytes(int64(pl.rate)) + "/s",
					"layers":   fmt.Sprintf("%d of %d done", pl.layersDone, len(p.layers)),
					"fetching": strings.Join(pl.fetching, ", "),
					"elapsed":  now.Sub(p.start).Round(time.Second).String(),
				}).Info("pull progress")
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func short(d digest.Digest) string {
	if e := d.Encoded(); len(e) > 12 {
		return e[:12]
	}
	return d.String()
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, exp := float64(n)/unit, 0
	for v >= unit && exp < 4 {
		v /= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[exp])
}
