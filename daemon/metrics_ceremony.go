package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumd/quorumd/mpc/ceremony"
)

var droppedDesc = prometheus.NewDesc("quorumd_ceremony_envelopes_dropped_total",
	"Ceremony envelopes dropped unread, by reason.", []string{"reason"}, nil)

// droppedCollector exposes the envelopes ceremonies dropped instead of
// aborting (forged, undecodable, from non-members, replayed, mistyped): a
// rise means someone is posting into rooms.
type droppedCollector struct{}

func (droppedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- droppedDesc }

func (droppedCollector) Collect(ch chan<- prometheus.Metric) {
	for r, n := range ceremony.DroppedEnvelopes() {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(n), r)
	}
}
