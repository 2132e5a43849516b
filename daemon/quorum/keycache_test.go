package quorum

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/daemon/store"
	"github.com/quorumd/quorumd/mpc/ceremony"
	"github.com/quorumd/quorumd/mpc/envelope"
)

// TestKeyCache: a sign reuses the parsed public part of its key while the
// record's public fields are unchanged, and parses afresh (and fails on a
// bad point) as soon as any of them changes.
func TestKeyCache(t *testing.T) {
	ps := newParties(t, 0, 0, 0)
	x, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range importAll(t, ps, x) {
		if err != nil {
			t.Fatalf("import at %d: %v", i, err)
		}
	}
	signWith(t, x, ps[0], ps[1])
	p := ps[0]
	r, err := p.svc.Store.Get(context.Background(), p.keyID)
	if err != nil {
		t.Fatal(err)
	}
	k1, c1, err := p.svc.keys.get(r)
	if err != nil || len(c1) != r.N {
		t.Fatalf("get: %v, certificate of %d signatures", err, len(c1))
	}
	if k2, _, err := p.svc.keys.get(r); err != nil || k2 != k1 {
		t.Fatalf("second get of an unchanged record: %v, same KeyInfo %t (the sign above cached it)", err, k2 == k1)
	}
	tr := slices.Clone(r.Transcript)
	tr[0] ^= 1
	r2 := r
	r2.Transcript = tr
	if k3, _, err := p.svc.keys.get(r2); err != nil || k3 == k1 || !bytes.Equal(k3.Transcript[:], tr) {
		t.Fatalf("get after a transcript change: %v, stale %t", err, k3 == k1)
	}
	r3 := r
	r3.State = store.StatePending
	if _, c, err := p.svc.keys.get(r3); err != nil || c != nil {
		t.Fatalf("pending record: %v, certificate %d signatures, want none", err, len(c))
	}
	r4 := r
	r4.KeygenIDs = slices.Clone(r.KeygenIDs)
	bad := slices.Clone(r.KeygenIDs[1])
	bad[0] = 0x05 // not a compressed point
	r4.KeygenIDs[1] = bad
	if _, _, err := p.svc.keys.get(r4); err == nil {
		t.Fatal("a record with a malformed keygen_id was served (from the cache?)")
	}
}

// BenchmarkKeyParse compares parsing a ready record's public part (what
// each sign did before keyCache) with a cache hit, at 3 and 100 parties.
func BenchmarkKeyParse(b *testing.B) {
	for _, n := range []int{3, 100} {
		r := syntheticRecord(b, n)
		b.Run(fmt.Sprintf("parse/n=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, _, err := parseKey(r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("cached/n=%d", n), func(b *testing.B) {
			var c keyCache
			for b.Loop() {
				if _, _, err := c.get(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// syntheticRecord is a ready import record of n parties: valid points and
// a well-formed certificate (its signatures are not checked here).
func syntheticRecord(b *testing.B, n int) store.Record {
	r := store.Record{KeyID: "k", Owner: "alice", State: store.StateReady, Source: store.SourceImport,
		T: n*2/3 + 1, N: n, Transcript: make([]byte, 32)}
	rd := &ceremony.RecoveryData{Kind: envelope.KindImport, Room: "room", T: r.T, Deal: make([]byte, 200), Cert: make(ceremony.Certificate, n)}
	for range n {
		k, err := btcec.NewPrivateKey()
		if err != nil {
			b.Fatal(err)
		}
		pub := k.PubKey().SerializeCompressed()
		r.KeygenIDs = append(r.KeygenIDs, pub)
		r.PublicShares = append(r.PublicShares, pub)
		rd.Parties = append(rd.Parties, envelope.Party(pub))
	}
	slices.SortFunc(rd.Parties, func(a, b envelope.Party) int { return bytes.Compare(a[:], b[:]) })
	r.PublicKey = r.KeygenIDs[0]
	r.RecoveryData = rd.Marshal()
	return r
}
