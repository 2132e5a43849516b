package daemon

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Metrics is the daemon's Prometheus registry (client_golang): request
// counts by route/method/status, request durations by route, requests in
// flight, ceremonies by kind and outcome, plus the Go runtime and process
// collectors. Labels are route patterns and err_types only, never ids or
// values from requests.
type Metrics struct {
	reg *prometheus.Registry

	inFlight    prometheus.Gauge
	requests    *prometheus.CounterVec   // route, method, status
	reqDur      *prometheus.HistogramVec // route
	ceremonies  *prometheus.CounterVec   // kind, outcome
	ceremonyDur *prometheus.HistogramVec // kind
	rejected    *prometheus.CounterVec   // reason (see fairshare.go)

	// Further series go here, each created and registered in NewMetrics
	// and fed through an Observe… method below.
}

// durationBuckets (seconds) span fast key lookups to ceremony timeouts.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// NewMetrics returns a registry with every quorumd series and the Go
// runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "quorumd_http_requests_in_flight", Help: "HTTP requests being served."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumd_http_requests_total", Help: "HTTP requests by route pattern, method and status."},
			[]string{"route", "method", "status"}),
		reqDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quorumd_http_request_duration_seconds", Help: "HTTP request duration by route pattern.", Buckets: durationBuckets},
			[]string{"route"}),
		ceremonies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumd_ceremonies_total", Help: "Ceremonies by kind and outcome (ok or the err_type)."},
			[]string{"kind", "outcome"}),
		ceremonyDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quorumd_ceremony_duration_seconds", Help: "Ceremony duration by kind.", Buckets: durationBuckets},
			[]string{"kind"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumd_http_rejected_total", Help: "Requests refused by fair sharing or strict routing, by reason."},
			[]string{"reason"}),
	}
	start := prometheus.NewGauge(prometheus.GaugeOpts{Name: "quorumd_start_time_seconds", Help: "Unix time the daemon started."})
	start.Set(float64(time.Now().Unix()))
	m.reg.MustRegister(m.inFlight, m.requests, m.reqDur, m.ceremonies, m.ceremonyDur, m.rejected, start, droppedCollector{},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the registry, for further collectors (e.g. the policy
// cache's counters) registered by the daemon's wiring.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func registerAll(reg *prometheus.Registry, cs []prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ObserveRequest records one finished HTTP request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.reqDur.WithLabelValues(route).Observe(d.Seconds())
}

// ObserveCeremony records one finished ceremony; outcome is "ok" or the
// err_type it failed with.
func (m *Metrics) ObserveCeremony(kind, outcome string, d time.Duration) {
	m.ceremonies.WithLabelValues(kind, outcome).Inc()
	m.ceremonyDur.WithLabelValues(kind).Observe(d.Seconds())
}

// ObserveRejected counts a request refused by fair sharing or strict
// routing; reason is one of the reject* constants.
func (m *Metrics) ObserveRejected(reason string) {
	m.rejected.WithLabelValues(reason).Inc()
}

// metricsContentType is the text exposition format WriteTo produces.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteTo writes every series in the text exposition format (0.0.4).
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	mfs, err := m.reg.Gather()
	if err != nil {
		return 0, fmt.Errorf("gather: %w", err)
	}
	cw := &countWriter{w: w}
	bw := bufio.NewWriter(cw)
	enc := expfmt.NewEncoder(bw, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return cw.n, err
		}
	}
	err = bw.Flush()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
