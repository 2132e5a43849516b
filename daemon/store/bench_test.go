package store_test

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/hsm"
)

// Benchmarks report throughput as ops/s (commits/s) and read latency
// percentiles as p50-ns / p99-ns. Run with:
//
//	go test -run '^$' -bench . ./daemon/store/              (10⁴ records)
//	QUORUMD_LONG=1 go test -run '^$' -bench Get ./daemon/store/  (adds 10⁶)

var benchModes = []struct {
	name string
	opts store.Options
}{
	{"fsync-per-commit", store.Options{SerialCommit: true}},
	{"group-commit", store.Options{}},
	{"bbolt-batch", store.WithBoltBatch(store.Options{SerialCommit: true})},
}

// benchStore is a backend to benchmark: bbolt in each write mode, and
// PostgreSQL (the package's cluster, a fresh schema per run).
type benchStore struct {
	name string
	open func(b *testing.B) store.Store
}

func benchStores() []benchStore {
	var out []benchStore
	for _, m := range benchModes {
		out = append(out, benchStore{"bolt/" + m.name, func(b *testing.B) store.Store {
			s, _ := openStore(b, m.opts)
			return s
		}})
	}
	return append(out, benchStore{"postgres", func(b *testing.B) store.Store { return openPG(b, pgSchema(b)) }})
}

// runWorkers calls op(i) for i in [0,n) spread over w goroutines.
func runWorkers(b *testing.B, n, w int, op func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(i); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		b.Fatal(err)
	}
}

// preparedSlots fills s with n created slots and returns their ids.
func preparedSlots(b *testing.B, s store.Store, n int) []string {
	b.Helper()
	keys := make([]string, n)
	recs := make([]store.Record, n)
	at := time.Now().UTC()
	for i := range n {
		keys[i] = fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		sl := fxSlot(keys[i])
		recs[i] = store.Record{KeyID: sl.KeyID, Owner: sl.Owner, Scheme: sl.Scheme, State: store.StateCreated,
			KeygenID: sl.KeygenID, SealedIdentityKey: sl.SealedIdentityKey, CreatedAt: at}
	}
	if err := store.BulkLoad(s, recs); err != nil {
		b.Fatal(err)
	}
	return keys
}

// BenchmarkCreateSlot is /bip340/create's write: one new record, durable.
func BenchmarkCreateSlot(b *testing.B) {
	for _, bs := range benchStores() {
		for _, workers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/workers=%d", bs.name, workers), func(b *testing.B) {
				s := bs.open(b)
				prefix := fmt.Sprintf("create-%d-", time.Now().UnixNano())
				slots := make([]store.Slot, b.N)
				for i := range slots {
					slots[i] = fxSlot(prefix + fmt.Sprint(i))
				}
				b.ResetTimer()
				runWorkers(b, b.N, workers, func(i int) error { return s.CreateSlot(ctx, slots[i]) })
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
			})
		}
	}
}

func BenchmarkCommit(b *testing.B) {
	for _, bs := range benchStores() {
		for _, workers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/workers=%d", bs.name, workers), func(b *testing.B) {
				s := bs.open(b)
				keys := preparedSlots(b, s, b.N)
				commits := make([]store.Commitment, b.N)
				for i, k := range keys {
					commits[i] = fxCommitment(k)
				}
				b.ResetTimer()
				runWorkers(b, b.N, workers, func(i int) error {
					return s.Commit(ctx, fxOwner(keys[i]), keys[i], commits[i])
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
			})
		}
	}
}

// BenchmarkSealCommit is the import commit path: seal a 32-byte share in
// SoftHSM, then commit the record durably.
func BenchmarkSealCommit(b *testing.B) {
	h, err := hsm.Open(hsm.Config{ModulePath: hsmToken.Module, TokenLabel: hsmToken.Label, PIN: hsmToken.PIN,
		KeyLabel: "bench-wrap", CreateKey: true, MaxSessions: 80})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	share := make([]byte, 32)
	for _, bs := range append(benchStores()[:2], benchStores()[3]) {
		for _, workers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/workers=%d", bs.name, workers), func(b *testing.B) {
				s := bs.open(b)
				keys := preparedSlots(b, s, b.N)
				b.ResetTimer()
				runWorkers(b, b.N, workers, func(i int) error {
					k := keys[i]
					c := fxCommitment(k)
					sealed, err := h.Seal(share, shareAAD(k, fxOwner(k), c.OwnID))
					if err != nil {
						return err
					}
					c.SealedShare = sealed
					return s.Commit(ctx, fxOwner(k), k, c)
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			})
		}
	}
}

// readStores caches populated stores across the benchmark framework's
// repeated calls (building 10⁶ records takes a while).
var readStores struct {
	sync.Mutex
	m map[int]*readFixture
}

type readFixture struct {
	s    *store.Bolt
	keys []string
}

func readFixtureOf(b *testing.B, n int) *readFixture {
	readStores.Lock()
	defer readStores.Unlock()
	if f := readStores.m[n]; f != nil {
		return f
	}
	dir, err := os.MkdirTemp("", "quorumd-store-bench-")
	if err != nil {
		b.Fatal(err)
	}
	s, err := store.OpenDir(dir, store.WithNoSync(store.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	f := &readFixture{s: s, keys: make([]string, n)}
	at := time.Now().UTC()
	start := time.Now()
	const chunk = 20000
	recs := make([]store.Record, 0, chunk)
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	for i := 0; i < n; i += chunk {
		recs = recs[:0]
		for j := i; j < min(n, i+chunk); j++ {
			// Random 128-bit ids like the daemon's, so inserts land all
			// over the tree as they will in production.
			var id [16]byte
			for k := range id {
				id[k] = byte(rng.Uint32())
			}
			f.keys[j] = hex.EncodeToString(id[:])
			recs = append(recs, fxReady(f.keys[j], at))
		}
		if err := store.BulkLoad(s, recs); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(dir + "/" + store.DefaultFileName)
	b.Logf("built %d records in %v, file %d MiB", n, time.Since(start).Round(time.Millisecond), fi.Size()>>20)
	if readStores.m == nil {
		readStores.m = map[int]*readFixture{}
	}
	readStores.m[n] = f
	storeCleanups = append(storeCleanups, func() { s.Close(); os.RemoveAll(dir) })
	return f
}

// storeCleanups run after all tests and benchmarks (from TestMain).
var storeCleanups []func()

func BenchmarkGet(b *testing.B) {
	sizes := []int{10_000}
	if os.Getenv("QUORUMD_LONG") == "1" {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			f := readFixtureOf(b, n)
			rng := rand.New(rand.NewPCG(2, 3))
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				k := f.keys[rng.IntN(len(f.keys))]
				t0 := time.Now()
				r, err := f.s.GetOwned(ctx, fxOwner(k), k)
				lat[i] = time.Since(t0)
				if err != nil || r.KeyID != k {
					b.Fatalf("GetOwned(%s): %v", k, err)
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkDecodeRecord: one ready record's read-side parse, without and
// with the decode cache (a sign reads its key's record twice per call).
func BenchmarkDecodeRecord(b *testing.B) {
	raw, err := store.EncodeRecord(fxReady("bench-decode", time.Unix(1700000000, 0).UTC()))
	if err != nil {
		b.Fatal(err)
	}
	for _, cached := range []bool{false, true} {
		b.Run(fmt.Sprintf("cached=%v", cached), func(b *testing.B) {
			for b.Loop() {
				if _, err := store.DecodeRecord("bench-decode", raw, cached); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
