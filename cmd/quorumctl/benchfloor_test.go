package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumd/quorumd/mpc/envelope"
)

func memIdentities(tb testing.TB, n int) []*envelope.Identity {
	ids := make([]*envelope.Identity, n)
	for i := range ids {
		id, err := envelope.GenerateIdentity()
		if err != nil {
			tb.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// TestFloorCeremonies: the floor's in-process ceremonies are the real ones:
// an import every party certifies, then signatures (each verified by the
// ceremony) with several signer sets.
func TestFloorCeremonies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := memIdentities(t, 4)
	keys, err := memImport(ctx, "room-a", ids, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.info == nil || len(k.cert) != 4 || k.info.ThreshPK != keys[0].info.ThreshPK {
			t.Fatalf("party without the common certified key: %+v", k.info)
		}
	}
	if err := memSign(ctx, "room-b", ids[:3], keys[:3]); err != nil {
		t.Fatal(err)
	}
	if err := memSign(ctx, "room-c", ids[1:], keys[1:]); err != nil {
		t.Fatal(err)
	}
	// Too few signers for the threshold cannot sign.
	short, cancel2 := context.WithTimeout(ctx, 5*time.Second)
	defer cancel2()
	if err := memSign(short, "room-d", ids[:2], keys[:2]); err == nil {
		t.Fatal("2 signers of a 3-of-4 key signed")
	}
}

// TestFloorArithmetic: the floors add the components the critical path
// waits for, and the ratio lines compare each run with its floor.
func TestFloorArithmetic(t *testing.T) {
	f := &floorReport{T: 2, N: 3, Signers: 2, CPUs: 2, ImportCrypto: 1 * time.Millisecond, ImportCPU: 2 * time.Millisecond,
		SignCrypto: 500 * time.Microsecond, SignCPU: time.Millisecond, RelayDelivery: 100 * time.Microsecond,
		RoomCreate: 50 * time.Microsecond, HTTP: 50 * time.Microsecond, HSMSeal: 40 * time.Microsecond,
		HSMOpen: 30 * time.Microsecond, Fsync: 1 * time.Millisecond}
	f.derive()
	if want := 2290 * time.Microsecond; f.Import != want {
		t.Errorf("import floor %s, want %s", f.Import, want)
	}
	if want := f.Import + 1090*time.Microsecond + 100*time.Microsecond; f.ImportWhole != want {
		t.Errorf("whole import floor %s, want %s", f.ImportWhole, want)
	}
	if want := 880 * time.Microsecond; f.Sign != want {
		t.Errorf("sign floor %s, want %s", f.Sign, want)
	}
	if want := 2 / (2240e-6); fmt.Sprintf("%.3f", f.ImportPerS) != fmt.Sprintf("%.3f", want) {
		t.Errorf("import floor throughput %f, want %f", f.ImportPerS, want)
	}
	// On a loaded machine wall time exceeds the CPU the crypto needs: the
	// floor counts the CPU.
	g := *f
	g.ImportCrypto, g.ImportCPU = 5*time.Millisecond, time.Millisecond
	g.derive()
	if g.Import != f.Import {
		t.Errorf("import floor %s with wall > CPU, want %s", g.Import, f.Import)
	}
	var hb strings.Builder
	f.human(&hb)
	if strings.Contains(hb.String(), "data key creation CPU") {
		t.Errorf("a data key CPU line with none measured:\n%s", hb.String())
	}
	g.HSMDataKeyCPU = 11500 * time.Microsecond
	hb.Reset()
	g.human(&hb)
	if !strings.Contains(hb.String(), "  HSM data key creation CPU 11.50 ms (in the caller") {
		t.Errorf("no data key CPU line:\n%s", hb.String())
	}
	a := &benchAll{Floor: f, Runs: []*benchReport{
		{Mode: "import", Concurrency: 1, Latency: latencyStats{P50: 5 * time.Millisecond},
			Phases: map[string]latencyStats{"ceremony": {P50: 4580 * time.Microsecond}}},
		{Mode: "sign", Concurrency: 1, Latency: latencyStats{P50: 1760 * time.Microsecond}},
		{Mode: "sign", Concurrency: 32, Throughput: f.SignPerS / 4},
	}}
	got := strings.Join(a.ratioLines(), "\n")
	for _, want := range []string{"import       C=1   p50    4.58 ms", "floor   2.29 ms ratio  2.00",
		"sign         C=1   p50    1.76 ms", "floor   0.88 ms ratio  2.00", "sign         C=32", "ratio  4.00"} {
		if !strings.Contains(got, want) {
			t.Errorf("ratio lines lack %q:\n%s", want, got)
		}
	}
}

func BenchmarkFloorCeremonies(b *testing.B) {
	for _, s := range []struct{ t, n int }{{2, 3}, {7, 10}} {
		ids := memIdentities(b, s.n)
		ctx := context.Background()
		var keys []*memDurable
		b.Run(fmt.Sprintf("import/%dof%d", s.t, s.n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				var err error
				if keys, err = memImport(ctx, fmt.Sprintf("import-%d", i), ids, s.t); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("sign/%dof%d", s.t, s.n), func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				if err := memSign(ctx, fmt.Sprintf("sign-%d", i), ids[:s.t], keys[:s.t]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
