package cri

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/berth-cri/berth/images"
)

// fakePullStats serves fixed stats, counting the reads.
type fakePullStats struct {
	st    images.PullStats
	reads int
}

func (f *fakePullStats) PullStats() images.PullStats {
	f.reads++
	return f.st
}

func histogram(count uint64, sum time.Duration, buckets ...images.Bucket) images.Histogram {
	return images.Histogram{Count: count, Sum: sum, Buckets: buckets}
}

// The pull stats are published as they are at each scrape: counters by
// result and by how layers were had (the known label values at 0 until
// counted, unknown ones kept), durations as histograms in seconds, bytes,
// resumes and pulls running.
func TestPullCollector(t *testing.T) {
	src := &fakePullStats{st: images.PullStats{
		Pulls: map[string]images.Histogram{
			"ok": histogram(3, 4500*time.Millisecond, images.Bucket{UpperBound: time.Second, Count: 1},
				images.Bucket{UpperBound: 5 * time.Second, Count: 3}),
			"disk_full": histogram(1, 2*time.Second, images.Bucket{UpperBound: time.Second},
				images.Bucket{UpperBound: 5 * time.Second, Count: 1}),
		},
		Layers: map[string]uint64{"fetched": 4, "reused": 2, "later": 1},
		LayerDurations: map[string]images.Histogram{
			"ok": histogram(4, 1500*time.Millisecond, images.Bucket{UpperBound: 500 * time.Millisecond, Count: 4}),
		},
		BytesFetched: 1 << 20, Resumed: 2, Active: 1,
	}}
	const want = `
# HELP berth_image_pull_duration_seconds Duration of finished image pulls, by result (ok, failed, disk_full).
# TYPE berth_image_pull_duration_seconds histogram
berth_image_pull_duration_seconds_bucket{result="disk_full",le="1"} 0
berth_image_pull_duration_seconds_bucket{result="disk_full",le="5"} 1
berth_image_pull_duration_seconds_bucket{result="disk_full",le="+Inf"} 1
berth_image_pull_duration_seconds_sum{result="disk_full"} 2
berth_image_pull_duration_seconds_count{result="disk_full"} 1
berth_image_pull_duration_seconds_bucket{result="ok",le="1"} 1
berth_image_pull_duration_seconds_bucket{result="ok",le="5"} 3
berth_image_pull_duration_seconds_bucket{result="ok",le="+Inf"} 3
berth_image_pull_duration_seconds_sum{result="ok"} 4.5
berth_image_pull_duration_seconds_count{result="ok"} 3
# HELP berth_image_pull_fetched_bytes_total Compressed layer bytes read from registries by image pulls.
# TYPE berth_image_pull_fetched_bytes_total counter
berth_image_pull_fetched_bytes_total 1.048576e+06
# HELP berth_image_pull_layer_duration_seconds Duration of layer downloads and unpacks (layers fetched, unpacked or failed), by result (ok, failed).
# TYPE berth_image_pull_layer_duration_seconds histogram
berth_image_pull_layer_duration_seconds_bucket{result="ok",le="0.5"} 4
berth_image_pull_layer_duration_seconds_bucket{result="ok",le="+Inf"} 4
berth_image_pull_layer_duration_seconds_sum{result="ok"} 1.5
berth_image_pull_layer_duration_seconds_count{result="ok"} 4
# HELP berth_image_pull_layers_total Layers that image pulls needed, by how each was had: fetched (downloaded and unpacked), unpacked (from a blob already stored), reused (already unpacked), shared (another pull's download, waited for), failed.
# TYPE berth_image_pull_layers_total counter
berth_image_pull_layers_total{how="failed"} 0
berth_image_pull_layers_total{how="fetched"} 4
berth_image_pull_layers_total{how="later"} 1
berth_image_pull_layers_total{how="reused"} 2
berth_image_pull_layers_total{how="shared"} 0
berth_image_pull_layers_total{how="unpacked"} 0
# HELP berth_image_pull_resumes_total Blob requests sent again, from the byte where they stopped, after a connection dropped or idled.
# TYPE berth_image_pull_resumes_total counter
berth_image_pull_resumes_total 2
# HELP berth_image_pulls_in_progress Image pulls running now.
# TYPE berth_image_pulls_in_progress gauge
berth_image_pulls_in_progress 1
# HELP berth_image_pulls_total Image pulls finished, by result: ok, failed, or disk_full (failed for want of space, ENOSPC or EDQUOT).
# TYPE berth_image_pulls_total counter
berth_image_pulls_total{result="disk_full"} 1
berth_image_pulls_total{result="failed"} 0
berth_image_pulls_total{result="ok"} 3
`
	if err := testutil.CollectAndCompare(pullCollector{src}, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// Read again at the next scrape, not cached.
	src.st.Active = 0
	src.st.Pulls["failed"] = histogram(1, time.Second, images.Bucket{UpperBound: time.Second, Count: 1})
	reads := src.reads
	if err := testutil.CollectAndCompare(pullCollector{src}, strings.NewReader(`
# HELP berth_image_pulls_in_progress Image pulls running now.
# TYPE berth_image_pulls_in_progress gauge
berth_image_pulls_in_progress 0
# HELP berth_image_pulls_total Image pulls finished, by result: ok, failed, or disk_full (failed for want of space, ENOSPC or EDQUOT).
# TYPE berth_image_pulls_total counter
berth_image_pulls_total{result="disk_full"} 1
berth_image_pulls_total{result="failed"} 1
berth_image_pulls_total{result="ok"} 3
`), "berth_image_pulls_in_progress", "berth_image_pulls_total"); err != nil {
		t.Fatal(err)
	}
	if src.reads != reads+1 {
		t.Errorf("%d reads of the stats for one scrape", src.reads-reads)
	}
}

// Before any pull: the counters at 0 for every known label value, no
// histogram, and names, types and help that promlint accepts.
func TestPullCollectorEmpty(t *testing.T) {
	src := &fakePullStats{st: images.PullStats{Pulls: map[string]images.Histogram{}, Layers: map[string]uint64{},
		LayerDurations: map[string]images.Histogram{}}}
	if n := testutil.CollectAndCount(pullCollector{src}); n != len(pullResults)+len(layerHows)+3 {
		t.Errorf("%d series before any pull, want %d", n, len(pullResults)+len(layerHows)+3)
	}
	if n := testutil.CollectAndCount(pullCollector{src}, "berth_image_pull_duration_seconds", "berth_image_pull_layer_duration_seconds"); n != 0 {
		t.Errorf("%d histograms before any pull", n)
	}
	src.st.Pulls["ok"] = histogram(1, time.Second, images.Bucket{UpperBound: time.Second, Count: 1})
	problems, err := testutil.CollectAndLint(pullCollector{src})
	if err != nil || len(problems) != 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}
