package images

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PullStats are the image service's pull counters since it started, for
// metrics: cri publishes them (as Prometheus counters and histograms) at
// each scrape. Maps are keyed by result; a snapshot is a copy.
type PullStats struct {
	// Pulls are the finished pulls and their durations, by result: "ok",
	// "failed", or "disk_full" (failed for want of space).
	Pulls map[string]Histogram
	// Layers counts the layers that pulls needed, by how each was had:
	// "fetched" (downloaded and unpacked), "unpacked" (from a blob already
	// stored), "reused" (already unpacked), "shared" (another pull's
	// download of it, waited for), "failed".
	Layers map[string]uint64
	// LayerDurations are the durations of layer downloads and unpacks (the
	// "fetched", "unpacked" and "failed" ones), by result: "ok", "failed".
	LayerDurations map[string]Histogram
	// BytesFetched are the compressed bytes read from registries.
	BytesFetched uint64
	// Resumed counts blob requests sent again, from where they stopped,
	// after a connection dropped or idled.
	Resumed uint64
	// Active is the number of pulls running now.
	Active int
}

// Histogram is a count and sum of durations with cumulative counts per
// upper bound, ascending, as Prometheus histograms have them.
type Histogram struct {
	Count   uint64
	Sum     time.Duration
	Buckets []Bucket
}

// Bucket counts the observations at most UpperBound.
type Bucket struct {
	UpperBound time.Duration
	Count      uint64
}

// pullBuckets span a small image on a fast link to a large one on a slow link.
var pullBuckets = []time.Duration{
	100 * time.Millisecond, 500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute,
}

func (h *Histogram) observe(d time.Duration) {
	if h.Buckets == nil {
		h.Buckets = make([]Bucket, len(pullBuckets))
		for i, b := range pullBuckets {
			h.Buckets[i].UpperBound = b
		}
	}
	h.Count++
	h.Sum += d
	for i := range h.Buckets {
		if d <= h.Buckets[i].UpperBound {
			h.Buckets[i].Count++
		}
	}
}

func (h Histogram) clone() Histogram {
	h.Buckets = slices.Clone(h.Buckets)
	return h
}

// pullCounters keep the PullStats.
type pullCounters struct {
	bytes   atomic.Uint64
	resumed atomic.Uint64
	active  atomic.Int64

	mu             sync.Mutex
	pulls          map[string]*Histogram
	layers         map[string]uint64
	layerDurations map[string]*Histogram
}

func (c *pullCounters) pullDone(result string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	observe(&c.pulls, result, d)
}

func (c *pullCounters) layer(how string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.layers == nil {
		c.layers = map[string]uint64{}
	}
	c.layers[how]++
}

func (c *pullCounters) layerDone(result string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	observe(&c.layerDurations, result, d)
}

func observe(m *map[string]*Histogram, key string, d time.Duration) {
	if *m == nil {
		*m = map[string]*Histogram{}
	}
	h := (*m)[key]
	if h == nil {
		h = &Histogram{}
		(*m)[key] = h
	}
	h.observe(d)
}

// PullStats returns a snapshot of the pull counters.
func (s *Service) PullStats() PullStats {
	c := &s.counters
	st := PullStats{BytesFetched: c.bytes.Load(), Resumed: c.resumed.Load(), Active: int(c.active.Load()),
		Pulls: map[string]Histogram{}, LayerDurations: map[string]Histogram{}}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, h := range c.pulls {
		st.Pulls[k] = h.clone()
	}
	for k, h := range c.layerDurations {
		st.LayerDurations[k] = h.clone()
	}
	st.Layers = maps.Clone(c.layers)
	if st.Layers == nil {
		st.Layers = map[string]uint64{}
	}
	return st
}
