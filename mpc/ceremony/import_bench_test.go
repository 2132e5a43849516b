package ceremony

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// BenchmarkImportDurable is BenchmarkImport's 2-of-3 serial case with a
// durable prepare that costs what a store's does at least: a 4 KiB write
// and fsync of a file per party (the bench floor's fsync). It shows what
// the ceremony overlaps with that write.
func BenchmarkImportDurable(b *testing.B) {
	addr := testkit.Relay(b)
	q := newQuorum(&testing.T{}, addr, 3)
	x := randomScalar(b)
	files := make([]*os.File, 3)
	for i := range files {
		f, err := os.Create(filepath.Join(b.TempDir(), "prepare"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		files[i] = f
	}
	page := make([]byte, 4096)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		room := q.room(3)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		errs := make([]error, 3)
		var wg sync.WaitGroup
		for i, id := range q.ids {
			p := ImportParams{Room: room, Identity: id, Others: q.others(i), Threshold: 2,
				Transport: RelayTransport(q.client, room, id, append([]envelope.Party{id.Public()}, q.others(i)...))}
			if i == 0 {
				xc := *x
				p.PrivateKey = &xc
			}
			d := &memDurable{prepareHook: func() {
				if _, err := files[i].WriteAt(page, 0); err != nil {
					panic(err)
				}
				if err := files[i].Sync(); err != nil {
					panic(err)
				}
			}}
			wg.Go(func() { _, errs[i] = Import(ctx, p, d) })
		}
		wg.Wait()
		lat = append(lat, time.Since(start))
		cancel()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	reportLatency(b, lat)
}
