package main

import (
	"slices"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
)

// BenchmarkE2EKeygenVsImport measures whole 2-of-3 keygens and imports
// through HTTP against three in-process daemons (real SoftHSM tokens,
// stores, loopback relay), interleaved one at a time so both see the same
// machine load, and reports each p50 and their ratio (target ≤ 1.5).
func BenchmarkE2EKeygenVsImport(b *testing.B) {
	t := &testing.T{}
	q := newQuorum(t, testkit.Relay(b), 0, 3)
	b.Cleanup(func() {
		for _, n := range q.nodes {
			n.stop()
		}
	})
	var kg, imp []time.Duration
	for i := range b.N {
		// Alternate which goes first, so neither always follows the other's
		// background work (lazy ready marks, room leaves).
		runImport := func() {
			priv, _ := newPrivateKey(t)
			s := q.slots(q.nodes)
			t0 := time.Now()
			for _, a := range q.importKey(q.nodes, s, 2, priv) {
				if a.status != 200 {
					b.Fatal(a.body["_raw"])
				}
			}
			imp = append(imp, time.Since(t0))
		}
		runKeygen := func() {
			s := q.slots(q.nodes)
			t0 := time.Now()
			for _, a := range q.keygen(q.nodes, s, 2) {
				if a.status != 200 {
					b.Fatal(a.body["_raw"])
				}
			}
			kg = append(kg, time.Since(t0))
		}
		if i%2 == 0 {
			runImport()
			runKeygen()
		} else {
			runKeygen()
			runImport()
		}
	}
	p50 := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds()) / 1000
	}
	k, i := p50(kg), p50(imp)
	b.ReportMetric(k, "keygen-p50-ms")
	b.ReportMetric(i, "import-p50-ms")
	b.ReportMetric(k/i, "keygen/import")
}
