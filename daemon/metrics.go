package daemon

import (
	"context"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/sandboxd/sandboxd/reaper"
	"github.com/sandboxd/sandboxd/store"
)

// metrics are the daemon's Prometheus metrics. No label takes unbounded
// values: states, reasons, actions, routes and codes are closed sets, and
// project or sandbox ids never appear.
type metrics struct {
	reg *prometheus.Registry

	createLatency  prometheus.Histogram
	reaped         *prometheus.CounterVec
	reapErrors     prometheus.Counter
	reapDuration   prometheus.Histogram
	events         *prometheus.CounterVec
	eventLag       prometheus.Histogram
	reconnects     prometheus.Counter
	streamUp       prometheus.Gauge
	requests       *prometheus.CounterVec
	requestLatency *prometheus.HistogramVec
	poolReady      *prometheus.GaugeVec
	poolClaims     *prometheus.CounterVec
	poolMisses     *prometheus.CounterVec
	poolRefill     prometheus.Histogram
}

func newMetrics(version string, st *store.Store, host string) *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		createLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sandboxd_create_duration_seconds",
			Help: "Time to create a sandbox, from request to running.", Buckets: prometheus.ExponentialBuckets(0.025, 2, 10)}),
		reaped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandboxd_reaped_total",
			Help: "Sandboxes and containers the reaper removed, by reason."}, []string{"reason"}),
		reapErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sandboxd_reap_errors_total",
			Help: "Reaper actions that failed (retried on the next pass)."}),
		reapDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sandboxd_reap_pass_duration_seconds",
			Help: "Duration of reaper passes.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandboxd_docker_events_total",
			Help: "Docker container events read from the engine, by action."}, []string{"action"}),
		eventLag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sandboxd_event_lag_seconds",
			Help: "From a Docker event's own time to its row written.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "sandboxd_event_stream_reconnects_total",
			Help: "Times the Docker event stream was subscribed again after it ended."}),
		streamUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sandboxd_event_stream_up",
			Help: "1 while the Docker event stream is connected."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandboxd_api_requests_total",
			Help: "API requests, by route and HTTP status."}, []string{"route", "code"}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sandboxd_api_request_duration_seconds",
			Help: "API request latency, by route.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"route"}),
	}
	// Pool metrics are labelled by image: a closed set, from --pool.
	m.poolReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sandboxd_pool_ready",
		Help: "Pooled sandboxes ready to be claimed, by image."}, []string{"image"})
	m.poolClaims = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandboxd_pool_claims_total",
		Help: "Creates served from a pool, by image."}, []string{"image"})
	m.poolMisses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sandboxd_pool_misses_total",
		Help: "Creates a pool could have served but found empty, by image."}, []string{"image"})
	m.poolRefill = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sandboxd_pool_refill_duration_seconds",
		Help: "Time to start one pool sandbox.", Buckets: prometheus.ExponentialBuckets(0.025, 2, 10)})
	reg.MustRegister(m.poolReady, m.poolClaims, m.poolMisses, m.poolRefill)
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sandboxd_build_info", Help: "Build information; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	build.Set(1)
	reg.MustRegister(m.createLatency, m.reaped, m.reapErrors, m.reapDuration, m.events, m.eventLag,
		m.reconnects, m.streamUp, m.requests, m.requestLatency, build,
		liveCollector{st: st, host: host},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves /metrics.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// poolCounts reads a pool's claims and misses back from its counters.
func (m *metrics) poolCounts(image string) (claims, misses int64) {
	read := func(c prometheus.Counter) int64 {
		var d dto.Metric
		if c.Write(&d) != nil || d.Counter == nil {
			return 0
		}
		return int64(d.Counter.GetValue())
	}
	return read(m.poolClaims.WithLabelValues(image)), read(m.poolMisses.WithLabelValues(image))
}

// observePass records a reaper pass.
func (m *metrics) observePass(actions []reaper.Action, d time.Duration) {
	m.reapDuration.Observe(d.Seconds())
	for _, a := range actions {
		switch {
		case a.Error != "":
			m.reapErrors.Inc()
		case a.Done:
			m.reaped.WithLabelValues(string(a.Reason)).Inc()
		}
	}
}

var liveDesc = prometheus.NewDesc("sandboxd_sandboxes", "Live sandboxes of this host, by state.", []string{"state"}, nil)

// liveCollector counts live sandboxes by state when scraped, so the gauge
// is the table's truth, not a count kept beside it.
type liveCollector struct {
	st   *store.Store
	host string
}

func (c liveCollector) Describe(ch chan<- *prometheus.Desc) { ch <- liveDesc }

func (c liveCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.st.CountLive(ctx, c.host)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(liveDesc, err)
		return
	}
	for _, s := range store.States {
		if s.Live() {
			ch <- prometheus.MustNewConstMetric(liveDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
		}
	}
}
