package cri

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-cri/berth/images"
)

// PullStatsSource is the image service's pull counters (images.Service).
type PullStatsSource interface {
	PullStats() images.PullStats
}

// The image pull metrics, read from the image service at each scrape. A
// pull here is one run of the image service: concurrent PullImage calls of
// one reference share one run, and a reference that does not parse never
// starts one.
var (
	pullsDesc = prometheus.NewDesc("berth_image_pulls_total",
		"Image pulls finished, by result: ok, failed, or disk_full (failed for want of space, ENOSPC or EDQUOT).",
		[]string{"result"}, nil)
	pullDurationDesc = prometheus.NewDesc("berth_image_pull_duration_seconds",
		"Duration of finished image pulls, by result (ok, failed, disk_full).", []string{"result"}, nil)
	pullLayersDesc = prometheus.NewDesc("berth_image_pull_layers_total",
		"Layers that image pulls needed, by how each was had: fetched (downloaded and unpacked), unpacked (from a blob already stored), "+
			"reused (already unpacked), shared (another pull's download, waited for), failed.",
		[]string{"how"}, nil)
	pullLayerDurationDesc = prometheus.NewDesc("berth_image_pull_layer_duration_seconds",
		"Duration of layer downloads and unpacks (layers fetched, unpacked or failed), by result (ok, failed).", []string{"result"}, nil)
	pullBytesDesc = prometheus.NewDesc("berth_image_pull_fetched_bytes_total",
		"Compressed layer bytes read from registries by image pulls.", nil, nil)
	pullResumesDesc = prometheus.NewDesc("berth_image_pull_resumes_total",
		"Blob requests sent again, from the byte where they stopped, after a connection dropped or idled.", nil, nil)
	pullsActiveDesc = prometheus.NewDesc("berth_image_pulls_in_progress", "Image pulls running now.", nil, nil)
)

// The label values every scrape has, at 0 until counted, so that rates
// over them start from the first scrape.
var (
	pullResults = []string{"ok", "failed", "disk_full"}
	layerHows   = []string{"fetched", "unpacked", "reused", "shared", "failed"}
)

// pullCollector publishes a PullStatsSource's counters.
type pullCollector struct{ src PullStatsSource }

func (c pullCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pullsDesc, pullDurationDesc, pullLayersDesc, pullLayerDurationDesc,
		pullBytesDesc, pullResumesDesc, pullsActiveDesc} {
		ch <- d
	}
}

func (c pullCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.src.PullStats()
	for _, result := range withKnown(pullResults, st.Pulls) {
		ch <- prometheus.MustNewConstMetric(pullsDesc, prometheus.CounterValue, float64(st.Pulls[result].Count), result)
	}
	for _, how := range withKnown(layerHows, st.Layers) {
		ch <- prometheus.MustNewConstMetric(pullLayersDesc, prometheus.CounterValue, float64(st.Layers[how]), how)
	}
	collectHistograms(ch, pullDurationDesc, st.Pulls)
	collectHistograms(ch, pullLayerDurationDesc, st.LayerDurations)
	ch <- prometheus.MustNewConstMetric(pullBytesDesc, prometheus.CounterValue, float64(st.BytesFetched))
	ch <- prometheus.MustNewConstMetric(pullResumesDesc, prometheus.CounterValue, float64(st.Resumed))
	ch <- prometheus.MustNewConstMetric(pullsActiveDesc, prometheus.GaugeValue, float64(st.Active))
}

// withKnown is the known keys, then any other key of m, sorted.
func withKnown[V any](known []string, m map[string]V) []string {
	keys := slices.Clone(known)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(known, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// collectHistograms sends one histogram per label value observed (a
// histogram's buckets come with its first observation).
func collectHistograms(ch chan<- prometheus.Metric, desc *prometheus.Desc, hs map[string]images.Histogram) {
	for _, label := range slices.Sorted(maps.Keys(hs)) {
		h := hs[label]
		buckets := make(map[float64]uint64, len(h.Buckets))
		for _, b := range h.Buckets {
			buckets[b.UpperBound.Seconds()] = b.Count
		}
		ch <- prometheus.MustNewConstHistogram(desc, h.Count, h.Sum.Seconds(), buckets, label)
	}
}
