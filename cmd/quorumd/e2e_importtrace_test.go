package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon"
	"github.com/quorumd/quorumd/daemon/boot"
	"github.com/quorumd/quorumd/daemon/quorum"
	"github.com/quorumd/quorumd/daemon/store"
)

// BenchmarkE2EImportTrace imports 2-of-3 keys through HTTP into three
// in-process daemons (real SoftHSM tokens, bbolt stores) and a quorum-relay
// process, one import at a time (slots and room made untimed), and logs
// (-v) the wall-clock trace of each party's call of median duration: the
// HTTP call, the key service's import inside it, the HSM open and seal,
// the durable prepare and the lazy ready mark, and each relay request.
// Gaps inside the import are CPU (deal, verification, envelopes).
//
//	go test ./cmd/quorumd -run '^$' -bench E2EImportTrace -benchtime 200x -v
func BenchmarkE2EImportTrace(b *testing.B) {
	t := &testing.T{}
	tr := &signTracer{}
	// No data-key pool: its refills (token searches that grow with the
	// token) would run in the background of the timed imports; each untimed
	// slot creation makes its key instead.
	q := tracedCluster(b, t, "  data_key_pool: 0\n", func(i int, relayAddr string) boot.OpenFunc {
		return importTracedBackends(tr, i, relayAddr)
	})
	priv, _ := newPrivateKey(t)
	const call = "HTTP call (client)"
	var walls []time.Duration
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		s := q.slots(q.nodes)
		room := q.nodes[0].must("POST", "/create-room", q.nodes[0].userKey, map[string]any{"room_size": 3})["room_uuid"].(string)
		b.StartTimer()
		c0, w0 := processCPU(), time.Now()
		tr.begin()
		out := make([]answer, len(q.nodes))
		var wg sync.WaitGroup
		for i, nd := range q.nodes {
			wg.Go(func() {
				body := map[string]any{"room_uuid": room, "key_id": s[i].keyID, "threshold": 2, "others_keygen_ids": others(s, i)}
				path := "/bip340/import/import-key-share-recipient"
				if i == 0 {
					body["private_key"] = priv
					path = "/bip340/import/key-importer"
				}
				t0 := time.Now()
				st, bd := nd.call("POST", path, nd.userKey, body)
				tr.add(i, call, t0)
				out[i] = answer{st, bd}
			})
		}
		wg.Wait()
		walls = append(walls, time.Since(w0))
		cpu += processCPU() - c0
		tr.end()
		for i, a := range out {
			if a.status != 200 {
				b.Fatalf("import at node %d: %d %v", i, a.status, a.body["_raw"])
			}
		}
	}
	b.StopTimer()
	slices.Sort(walls)
	b.ReportMetric(msOf(walls[len(walls)/2]), "p50-ms")
	b.ReportMetric(msOf(walls[len(walls)*9/10]), "p90-ms")
	b.ReportMetric(msOf(cpu)/float64(len(walls)), "cpu-ms/op")
	b.ReportMetric(msOf(tr.answerGap("key service import", call)), "gap-p50-ms")
	b.Log("\n" + tr.report(0, call) + tr.report(1, call) + tr.report(2, call))
}

// importTracedBackends is tracedBackends with the import's own steps
// traced too: the key service's import, HSM seals and the store's writes.
func importTracedBackends(tr *signTracer, party int, relayAddr string) boot.OpenFunc {
	open := tracedBackends(tr, party, relayAddr)
	return func(ctx context.Context, cfg *daemon.Config, log *slog.Logger) (daemon.Backends, io.Closer, error) {
		bk, cl, err := open(ctx, cfg, log)
		if err != nil {
			return bk, cl, err
		}
		svc := bk.Ceremonies.(tracedSign).Ceremonies.(*quorum.Service)
		svc.Store = importTracedStore{tracedStore: svc.Store.(tracedStore)}
		svc.Sealer = importTracedSealer{tracedSealer: svc.Sealer.(tracedSealer)}
		bk.Ceremonies = tracedImport{tracedSign: bk.Ceremonies.(tracedSign)}
		return bk, cl, nil
	}
}

// processCPU is the user and system time this process used so far: the
// three daemons' (the relay runs in its own process).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type tracedImport struct{ tracedSign }

func (s tracedImport) ImportKey(ctx context.Context, p daemon.ImportParams, x *btcec.ModNScalar) (daemon.ImportResult, error) {
	t0 := time.Now()
	defer s.tr.add(s.party, "key service import", t0)
	return s.Ceremonies.ImportKey(ctx, p, x)
}

func (s tracedImport) ImportRecipient(ctx context.Context, p daemon.ImportParams) (daemon.ImportResult, error) {
	t0 := time.Now()
	defer s.tr.add(s.party, "key service import", t0)
	return s.Ceremonies.ImportRecipient(ctx, p)
}

type importTracedStore struct{ tracedStore }

func (s importTracedStore) Prepare(ctx context.Context, owner, keyID string, c store.Commitment) error {
	t0 := time.Now()
	defer s.tr.add(s.party, "store prepare (durable)", t0)
	return s.Store.Prepare(ctx, owner, keyID, c)
}

func (s importTracedStore) MarkReady(ctx context.Context, owner, keyID string, transcript, rd []byte) error {
	t0 := time.Now()
	defer s.tr.add(s.party, "store ready mark (lazy)", t0)
	return s.Store.MarkReady(ctx, owner, keyID, transcript, rd)
}

type importTracedSealer struct{ tracedSealer }

func (s importTracedSealer) SealFor(keyID string, plaintext, aad []byte) ([]byte, error) {
	t0 := time.Now()
	defer s.tr.add(s.party, "HSM seal", t0)
	return s.Sealer.SealFor(keyID, plaintext, aad)
}

func (s importTracedSealer) CreateDataKey(keyID string) error {
	t0 := time.Now()
	defer s.tr.add(s.party, "HSM data key (exists: no-op)", t0)
	return s.Sealer.CreateDataKey(keyID)
}
