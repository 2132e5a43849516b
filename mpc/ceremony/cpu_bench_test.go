package ceremony

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
)

// cpuBenchSizes are the t-of-n shapes of the in-process benchmarks; 67-of-100
// is the largest the daemons are configured for in docs/bench.
var cpuBenchSizes = []struct{ t, n int }{{2, 3}, {7, 10}, {67, 100}}

// BenchmarkCeremonyCPU runs whole import and sign ceremonies of every party
// in this process over channels: ns/op is the wall time of all parties'
// compute on this machine's cores (the floor's ceremony crypto), so it shows
// how the crypto scales with t and n. Sign uses t signers. cpu-ns/op is the
// process's user+system CPU per ceremony, less noisy than wall time on a
// shared machine.
func BenchmarkCeremonyCPU(b *testing.B) {
	for _, tc := range cpuBenchSizes {
		q := &quorum{t: &testing.T{}}
		q.ids = make([]*envelope.Identity, tc.n)
		for i := range q.ids {
			q.ids[i] = newIdentity(b)
		}
		slices.SortFunc(q.ids, func(a, c *envelope.Identity) int { return compareParties(a.Public(), c.Public()) })
		var keys []*importOutcome
		b.Run(fmt.Sprintf("import/%d-of-%d", tc.t, tc.n), func(b *testing.B) {
			cpu := startCPU()
			for b.Loop() {
				keys = q.memImport(b, tc.t)
			}
			cpu.report(b)
		})
		if keys == nil {
			keys = q.memImport(b, tc.t)
		}
		b.Run(fmt.Sprintf("sign/%d-of-%d", tc.t, tc.n), func(b *testing.B) {
			msg := make([]byte, 32)
			cpu := startCPU()
			for b.Loop() {
				q.memSign(b, keys[:tc.t], msg)
			}
			cpu.report(b)
		})
	}
}

// memImport runs one import over a MemoryRoom (party 0 deals a fresh key).
func (q *quorum) memImport(b *testing.B, t int) []*importOutcome {
	hub := NewMemoryRoom(q.ids, 8*len(q.ids)+16)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out := make([]*importOutcome, len(q.ids))
	var wg sync.WaitGroup
	for i, id := range q.ids {
		out[i] = &importOutcome{}
		p := ImportParams{Room: "bench", Identity: id, Others: q.others(i), Threshold: t, Transport: hub.Transport(i)}
		if i == 0 {
			p.PrivateKey = randomScalar(b)
		}
		wg.Add(1)
		go func(o *importOutcome) {
			defer wg.Done()
			o.info, o.err = Import(ctx, p, &o.memDurable)
		}(out[i])
	}
	wg.Wait()
	for i, o := range out {
		if o.err != nil {
			b.Fatalf("party %d: %v", i, o.err)
		}
	}
	return out
}

// memSign runs one signature by the first len(keys) parties over a MemoryRoom.
func (q *quorum) memSign(b *testing.B, keys []*importOutcome, msg []byte) {
	ids := q.ids[:len(keys)]
	hub := NewMemoryRoom(ids, 8*len(ids)+16)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	for i, id := range ids {
		p := SignParams{Room: "bench", Identity: id, Key: keys[i].info, Share: keys[i].share,
			Signers: len(keys), Msg: msg, Certificate: keys[i].rd.Cert, Transport: hub.Transport(i)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Sign(ctx, p)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("signer %d: %v", i, err)
		}
	}
}

// cpuClock is the process's user+system CPU time at a benchmark's start.
type cpuClock time.Duration

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock(processCPU()) }

// report adds cpu-ns/op: CPU used since startCPU per iteration.
func (c cpuClock) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-time.Duration(c))/float64(b.N), "cpu-ns/op")
	}
}
