package ceremony

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

// reportLatency adds p50/p99 (ms) of the per-ceremony latencies.
func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
}

// BenchmarkImport measures whole import ceremonies through a relay on
// loopback, one at a time (latency) and 32 in flight (throughput).
func BenchmarkImport(b *testing.B) {
	addr := testkit.Relay(b)
	for _, tc := range []struct{ t, n int }{{2, 3}, {3, 5}, {7, 10}} {
		b.Run(fmt.Sprintf("%d-of-%d/serial", tc.t, tc.n), func(b *testing.B) {
			q := newQuorum(&testing.T{}, addr, tc.n)
			x := randomScalar(b)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				out := q.runImport(x, 0, tc.t, 30*time.Second, nil, nil)
				lat = append(lat, time.Since(start))
				if out[0].err != nil {
					b.Fatal(out[0].err)
				}
			}
			reportLatency(b, lat)
		})
		b.Run(fmt.Sprintf("%d-of-%d/inflight32", tc.t, tc.n), func(b *testing.B) {
			q := newQuorum(&testing.T{}, addr, tc.n)
			x := randomScalar(b)
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			sem := make(chan struct{}, 32)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				sem <- struct{}{}
				wg.Add(1)
				go func() {
					defer func() { <-sem; wg.Done() }()
					s := time.Now()
					out := q.runImport(x, 0, tc.t, 60*time.Second, nil, nil)
					mu.Lock()
					lat = append(lat, time.Since(s))
					mu.Unlock()
					if out[0].err != nil {
						b.Error(out[0].err)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ceremonies/s")
			reportLatency(b, lat)
		})
	}
}

// BenchmarkSign measures 2-of-3 signing ceremonies through the relay, whose
// room rate limit is lifted (each signature takes a room).
func BenchmarkSign(b *testing.B) {
	addr := testkit.Relay(b, relay.Config{ClientRoomRate: 1e6, ClientRoomBurst: 1 << 20})
	q := newQuorum(&testing.T{}, addr, 3)
	keys := q.runImport(randomScalar(b), 0, 2, 30*time.Second, nil, nil)
	msg := make([]byte, 32)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		out := q.runSign(keys, []int{0, 2}, msg, nil, 30*time.Second, nil)
		lat = append(lat, time.Since(start))
		if out[0].err != nil {
			b.Fatal(out[0].err)
		}
	}
	reportLatency(b, lat)
}
