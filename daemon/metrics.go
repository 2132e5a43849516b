package daemon

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics is a small hand-written Prometheus registry (text exposition
// format 0.0.4): request counts by route/method/status, request durations by
// route, requests in flight, and ceremonies by kind and outcome. Labels are
// route patterns and err_types only, never ids or values from requests.
type Metrics struct {
	start    time.Time
	inFlight atomic.Int64

	mu          sync.Mutex
	requests    map[[3]string]uint64 // route, method, status
	reqDur      map[string]*histogram
	ceremonies  map[[2]string]uint64 // kind, outcome
	ceremonyDur map[string]*histogram
	rejected    map[string]uint64 // reason (see fairshare.go)
}

// durationBuckets (seconds) span fast key lookups to ceremony timeouts.
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

type histogram struct {
	counts []uint64 // per bucket, non-cumulative; the last is +Inf
	sum    float64
	n      uint64
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(durationBuckets, v) // first bucket with bound >= v
	h.counts[i]++
	h.sum += v
	h.n++
}

// NewMetrics returns an empty registry.
func NewMetrics() *Metrics {
	return &Metrics{
		start:       time.Now(),
		requests:    map[[3]string]uint64{},
		reqDur:      map[string]*histogram{},
		ceremonies:  map[[2]string]uint64{},
		ceremonyDur: map[string]*histogram{},
		rejected:    map[string]uint64{},
	}
}

func newHistogram() *histogram { return &histogram{counts: make([]uint64, len(durationBuckets)+1)} }

// ObserveRequest records one finished HTTP request.
func (m *Metrics) ObserveRequest(route, method string, status int, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[[3]string{route, method, strconv.Itoa(status)}]++
	h := m.reqDur[route]
	if h == nil {
		h = newHistogram()
		m.reqDur[route] = h
	}
	h.observe(d.Seconds())
}

// ObserveCeremony records one finished ceremony; outcome is "ok" or the
// err_type it failed with.
func (m *Metrics) ObserveCeremony(kind, outcome string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ceremonies[[2]string{kind, outcome}]++
	h := m.ceremonyDur[kind]
	if h == nil {
		h = newHistogram()
		m.ceremonyDur[kind] = h
	}
	h.observe(d.Seconds())
}

// ObserveRejected counts a request refused by fair sharing or strict
// routing; reason is one of the reject* constants.
func (m *Metrics) ObserveRejected(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rejected[reason]++
}

// WriteTo writes the exposition text, series sorted for stable output.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: bufio.NewWriter(w)}
	m.mu.Lock()
	cw.printf("# HELP quorumd_http_requests_total HTTP requests by route pattern, method and status.\n")
	cw.printf("# TYPE quorumd_http_requests_total counter\n")
	keys3 := make([][3]string, 0, len(m.requests))
	for k := range m.requests {
		keys3 = append(keys3, k)
	}
	sort.Slice(keys3, func(i, j int) bool { return strings.Join(keys3[i][:], "\x00") < strings.Join(keys3[j][:], "\x00") })
	for _, k := range keys3 {
		cw.printf("quorumd_http_requests_total{route=%s,method=%s,status=%s} %d\n", q(k[0]), q(k[1]), q(k[2]), m.requests[k])
	}
	writeHistograms(cw, "quorumd_http_request_duration_seconds", "HTTP request duration by route pattern.", "route", m.reqDur)

	cw.printf("# HELP quorumd_ceremonies_total Ceremonies by kind and outcome (ok or the err_type).\n")
	cw.printf("# TYPE quorumd_ceremonies_total counter\n")
	keys2 := make([][2]string, 0, len(m.ceremonies))
	for k := range m.ceremonies {
		keys2 = append(keys2, k)
	}
	sort.Slice(keys2, func(i, j int) bool { return keys2[i][0]+"\x00"+keys2[i][1] < keys2[j][0]+"\x00"+keys2[j][1] })
	for _, k := range keys2 {
		cw.printf("quorumd_ceremonies_total{kind=%s,outcome=%s} %d\n", q(k[0]), q(k[1]), m.ceremonies[k])
	}
	writeHistograms(cw, "quorumd_ceremony_duration_seconds", "Ceremony duration by kind.", "kind", m.ceremonyDur)

	cw.printf("# HELP quorumd_http_rejected_total Requests refused by fair sharing or strict routing, by reason.\n")
	cw.printf("# TYPE quorumd_http_rejected_total counter\n")
	reasons := make([]string, 0, len(m.rejected))
	for r := range m.rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		cw.printf("quorumd_http_rejected_total{reason=%s} %d\n", q(r), m.rejected[r])
	}
	m.mu.Unlock()

	cw.printf("# HELP quorumd_http_requests_in_flight HTTP requests being served.\n")
	cw.printf("# TYPE quorumd_http_requests_in_flight gauge\n")
	cw.printf("quorumd_http_requests_in_flight %d\n", m.inFlight.Load())
	cw.printf("# HELP quorumd_start_time_seconds Unix time the daemon started.\n")
	cw.printf("# TYPE quorumd_start_time_seconds gauge\n")
	cw.printf("quorumd_start_time_seconds %d\n", m.start.Unix())
	writeDropped(cw)
	if cw.err == nil {
		cw.err = cw.w.Flush()
	}
	return cw.n, cw.err
}

func writeHistograms(cw *countWriter, name, help, label string, hs map[string]*histogram) {
	cw.printf("# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	keys := make([]string, 0, len(hs))
	for k := range hs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		h := hs[k]
		var cum uint64
		for i, b := range durationBuckets {
			cum += h.counts[i]
			cw.printf("%s_bucket{%s=%s,le=%q} %d\n", name, label, q(k), strconv.FormatFloat(b, 'g', -1, 64), cum)
		}
		cum += h.counts[len(durationBuckets)]
		cw.printf("%s_bucket{%s=%s,le=\"+Inf\"} %d\n", name, label, q(k), cum)
		cw.printf("%s_sum{%s=%s} %s\n", name, label, q(k), strconv.FormatFloat(h.sum, 'g', -1, 64))
		cw.printf("%s_count{%s=%s} %d\n", name, label, q(k), h.n)
	}
}

// q quotes a label value per the exposition format (\\, \" and \n escaped).
func q(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

type countWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countWriter) printf(format string, args ...any) {
	if c.err != nil {
		return
	}
	n, err := fmt.Fprintf(c.w, format, args...)
	c.n += int64(n)
	c.err = err
}
