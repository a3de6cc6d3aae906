package cri

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/containerd/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-cri/berth/sandbox"
	"github.com/berth-cri/berth/sandbox/container"
)

// Berth's own metrics. The call metrics are the process's (every server in
// it shares them); the state gauges and the pull metrics (observe_pulls.go)
// are read from a server and its image service at each scrape.
var (
	callDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "berth", Name: "cri_call_duration_seconds",
		Help:    "Duration of CRI calls, by method and gRPC code.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
	}, []string{"method", "code"})
)

var (
	podsDesc       = prometheus.NewDesc("berth_pods", "Pod sandboxes, by state.", []string{"state"}, nil)
	containersDesc = prometheus.NewDesc("berth_containers", "Containers, by state.", []string{"state"}, nil)
	shimsDesc      = prometheus.NewDesc("berth_shims", "Pods with a shim.", nil, nil)
)

// stateCollector counts a server's pods, containers and shims at each scrape
// (from memory: no shim is called).
type stateCollector struct{ s *Server }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- containersDesc
	ch <- shimsDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	pods := map[sandbox.State]int{sandbox.Ready: 0, sandbox.NotReady: 0}
	for _, p := range c.s.pods.List() {
		pods[p.State]++
	}
	for st, n := range pods {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), string(st))
	}
	ctrs := map[container.State]int{container.Created: 0, container.Running: 0, container.Exited: 0, container.Unknown: 0}
	for _, ctr := range c.s.containers.List(nil) {
		ctrs[ctr.State]++
	}
	for st, n := range ctrs {
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(n), string(st))
	}
	ch <- prometheus.MustNewConstMetric(shimsDesc, prometheus.GaugeValue, float64(len(c.s.shims.Pods())))
}

// StartMetrics serves Berth's metrics at http://addr/metrics until Close.
func (s *Server) StartMetrics(addr string) error {
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{callDuration, stateCollector{s},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	if s.pullStats != nil {
		cs = append(cs, pullCollector{s.pullStats})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := s.metricsHTTP.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.G(s.bg).WithError(err).Error("metrics server")
		}
	}()
	log.G(s.bg).WithField("address", l.Addr().String()).Info("serving metrics")
	return nil
}
