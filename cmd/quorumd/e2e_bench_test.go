package main

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
)

// BenchmarkE2EImport measures whole 2-of-3 imports through HTTP (three key
// slots, a room, the three import calls) against three in-process daemons
// with real SoftHSM tokens, stores and a loopback relay, one at a time and
// 32 in flight. Profile it with -cpuprofile to see where a daemon's time
// goes; `quorumctl bench` measures the same against real processes.
func BenchmarkE2EImport(b *testing.B) {
	t := &testing.T{}
	relayAddr := testkit.Relay(b)
	q := newQuorum(t, relayAddr, 0, 3)
	b.Cleanup(func() {
		for _, n := range q.nodes {
			n.stop()
		}
	})
	for _, inflight := range []int{1, 32} {
		b.Run(map[int]string{1: "serial", 32: "inflight32"}[inflight], func(b *testing.B) {
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			sem := make(chan struct{}, inflight)
			var wg sync.WaitGroup
			start := time.Now()
			for range b.N {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					priv, _ := newPrivateKey(t)
					s := q.slots(q.nodes)
					t0 := time.Now()
					out := q.importKey(q.nodes, s, 2, priv)
					d := time.Since(t0)
					for _, a := range out {
						if a.status != 200 {
							b.Error(a.body["_raw"])
						}
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				}()
			}
			wg.Wait()
			if len(lat) < b.N {
				b.Fatalf("%d of %d imports did not complete (key slots not created?)", b.N-len(lat), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "imports/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
