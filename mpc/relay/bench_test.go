package relay_test

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/relay"
)

var benchCfg = relay.Config{MaxRoomMessages: 1 << 20, MaxRoomBytes: 1 << 30, MaxRooms: 1 << 16}

// benchEnvelope is sized like a signed, encrypted share envelope.
var benchEnvelope = make([]byte, 256)

// cpuTime is the process's user+system CPU time so far: relay and clients
// share the process, so per-op CPU covers both sides of a delivery.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkPostFetch: one Post then one immediate Fetch of it (two HTTP
// round trips, no waiting), on loopback.
func BenchmarkPostFetch(b *testing.B) {
	addr := testkit.Relay(b, benchCfg)
	c := newClient(b, addr)
	ctx := context.Background()
	room := mustRoom(b, c, 2)
	a, p := party(1), party(2)
	var after uint64
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if err := postAs(c, ctx, room, a, p, benchEnvelope); err != nil {
			b.Fatal(err)
		}
		msgs, err := fetchAs(c, ctx, room, p, after, 0)
		if err != nil || len(msgs) != 1 {
			b.Fatalf("fetch: %v %d", err, len(msgs))
		}
		after = msgs[0].Seq
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// BenchmarkPingPong: A sends to B, who is already long-polling; B answers;
// A receives. One op is a full exchange through two long-poll wake-ups.
func BenchmarkPingPong(b *testing.B) {
	addr := testkit.Relay(b, benchCfg)
	c := newClient(b, addr)
	pingPong(b, c, c)
}

// BenchmarkPingPongJetStream is BenchmarkPingPong through two relay
// instances over one nats-server: A uses one, B the other.
func BenchmarkPingPongJetStream(b *testing.B) {
	url, _ := testkit.NATSServer(b)
	cfg := benchCfg
	cfg.Name = "bench"
	cfg.NATS = &relay.NATSConfig{URL: url, Memory: true}
	ca := newClient(b, testkit.Relay(b, cfg))
	cb := newClient(b, testkit.Relay(b, cfg))
	pingPong(b, ca, cb)
}

// BenchmarkSeatClaim: one party signs a claim and takes its seat in a
// fresh room (room creation included).
func BenchmarkSeatClaim(b *testing.B) {
	addr := testkit.Relay(b, relay.Config{MaxRooms: 1 << 20, MaxRoomsPerClient: 1 << 20, ClientRoomRate: 1e9, ClientRoomBurst: 1 << 30})
	c := newClient(b, addr)
	ctx := context.Background()
	id := identityOf(party(1))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		room := mustRoom(b, c, 2)
		t0 := time.Now()
		if _, err := c.TakeSeat(ctx, room, id, testMembers()); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

func pingPong(b *testing.B, ca, cb *relay.Client) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	room := mustRoom(b, ca, 2)
	a, p := joinAs(b, ca, room, party(1)), joinAs(b, cb, room, party(2))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // echo
		defer wg.Done()
		for {
			m, err := p.Recv(ctx)
			if err != nil {
				return
			}
			if err := p.Send(ctx, a.Party(), m.Body); err != nil {
				return
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		t0 := time.Now()
		if err := a.Send(ctx, p.Party(), benchEnvelope); err != nil {
			b.Fatal(err)
		}
		if _, err := a.Recv(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	// Two deliveries per op (ping and pong).
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(2*b.N), "cpu-µs/msg")
	cancel()
	wg.Wait()
	reportLatency(b, lat)
}

// BenchmarkParallelRooms: many rooms at once, each with a sender and a
// long-polling receiver; reports delivered messages per second.
func BenchmarkParallelRooms(b *testing.B) {
	for _, rooms := range []int{8, 64} {
		b.Run(itoa(rooms)+"rooms", func(b *testing.B) {
			addr := testkit.Relay(b, benchCfg)
			c := newClient(b, addr, relay.ClientConfig{MaxIdleConnsPerHost: 4 * rooms})
			ctx := context.Background()
			var next sync.Mutex
			remaining := b.N
			take := func() bool { // share b.N messages among the rooms
				next.Lock()
				defer next.Unlock()
				if remaining == 0 {
					return false
				}
				remaining--
				return true
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for range rooms {
				room := mustRoom(b, c, 2)
				a, p := joinAs(b, c, room, party(1)), joinAs(b, c, room, party(2))
				sent := make(chan struct{}, 1024)
				wg.Add(2)
				go func() {
					defer wg.Done()
					defer close(sent)
					for take() {
						if err := a.Send(ctx, p.Party(), benchEnvelope); err != nil {
							b.Error(err)
							return
						}
						sent <- struct{}{}
					}
				}()
				go func() {
					defer wg.Done()
					for range sent {
						if _, err := p.Recv(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var d []byte
	for ; n > 0; n /= 10 {
		d = append([]byte{byte('0' + n%10)}, d...)
	}
	return string(d)
}
