package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/proclog"
	"github.com/quorumd/quorumd/internal/testkit"
)

// BenchmarkE2EImportReplicas measures whole 2-of-3 imports through HTTP
// where party C runs on PostgreSQL as 1 or 2 quorumd processes sharing one
// database and one SoftHSM token (C's calls alternate between replicas);
// A and B are in-process daemons on bbolt. Imports/s and p50/p99 latency,
// 16 imports in flight. Compare with BenchmarkE2EImport (all bbolt).
func BenchmarkE2EImportReplicas(b *testing.B) {
	t := &testing.T{} // the e2e helpers take a *testing.T; failures go through b
	pg := testkit.PostgresOrSkip(b)
	relayAddr := testkit.Relay(b)
	bin := filepath.Join(b.TempDir(), "quorumd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	a := configureNode(t, tokens[0], relayAddr, e2eCeremonyTimeout, relayAddr)
	bb := configureNode(t, tokens[1], relayAddr, e2eCeremonyTimeout, relayAddr)
	for _, n := range []*node{a, bb} {
		n.start()
		b.Cleanup(n.stop)
		n.userKey, n.userID = n.createUser("alice")
	}
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			dsn, err := pg.CreateDatabase(context.Background(), fmt.Sprintf("bench_%d_%d", replicas, time.Now().UnixNano()))
			if err != nil {
				b.Fatal(err)
			}
			c := configureNode(t, tokens[2], relayAddr, e2eCeremonyTimeout, relayAddr)
			usePostgres(t, c, dsn)
			cs := []*node{c}
			for len(cs) < replicas {
				cs = append(cs, replicaOf(t, c))
			}
			for _, r := range cs {
				r.base = "http://" + startBenchProc(b, bin, r.cfgPath)
			}
			c.userKey, c.userID = c.createUser("alice")
			for _, r := range cs[1:] {
				r.userKey, r.userID = c.userKey, c.userID
			}
			q := &cluster{t: t}
			var next atomic.Int64
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			sem := make(chan struct{}, 16)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					nodes := []*node{a, bb, cs[int(next.Add(1))%len(cs)]}
					priv, _ := newPrivateKey(t)
					s := q.slots(nodes)
					t0 := time.Now()
					out := q.importKey(nodes, s, 2, priv)
					d := time.Since(t0)
					for _, ans := range out {
						if ans.status != 200 {
							b.Error(ans.body["_raw"])
							return
						}
					}
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
				})
			}
			wg.Wait()
			if len(lat) < b.N {
				b.Fatalf("%d of %d imports failed", b.N-len(lat), b.N)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "imports/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// startBenchProc runs quorumd as a process until b ends and returns its
// listening address.
func startBenchProc(b *testing.B, bin, cfgPath string) string {
	b.Helper()
	cmd := exec.Command(bin, "-config", cfgPath)
	cmd.Env = os.Environ()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	addr, read := proclog.Follow(stderr, "quorumd serving", func([]byte) {})
	done := make(chan struct{})
	go func() {
		<-read // Wait closes the pipe: let the reader drain it first
		cmd.Wait()
		close(done)
	}()
	b.Cleanup(func() { cmd.Process.Kill(); <-done })
	select {
	case a := <-addr:
		return a
	case <-done:
		b.Fatal("quorumd exited at start")
	case <-time.After(60 * time.Second):
		b.Fatal("quorumd did not start")
	}
	return ""
}
