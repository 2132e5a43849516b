package ceremony

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/frost"
	"github.com/quorumd/quorumd/mpc/relay"
)

type batchOutcome struct {
	res []BatchResult
	err error
}

// runBatch runs SignBatch for signers over items; adjust may change one
// signer's params (its items are its own copy).
func (q *quorum) runBatch(keys []*importOutcome, signers []int, items []BatchItem,
	timeout time.Duration, adjust func(i int, p *BatchParams)) []*batchOutcome {
	room := q.room(len(signers))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]*batchOutcome, len(signers))
	var wg sync.WaitGroup
	for j, i := range signers {
		out[j] = &batchOutcome{}
		p := BatchParams{SignParams: SignParams{Room: room, Identity: q.ids[i], Key: keys[i].info, Share: keys[i].share,
			Signers: len(signers), Certificate: keys[i].rd.Cert,
			Transport: RelayTransport(q.client, room, q.ids[i], append([]envelope.Party{q.ids[i].Public()}, q.others(i)...))},
			Items: append([]BatchItem(nil), items...)}
		if adjust != nil {
			adjust(i, &p)
		}
		wg.Add(1)
		go func(o *batchOutcome) {
			defer wg.Done()
			o.res, o.err = SignBatch(ctx, p)
		}(out[j])
	}
	wg.Wait()
	return out
}

func importedKeys(t *testing.T, q *quorum, thr int) []*importOutcome {
	t.Helper()
	keys := q.runImport(randomScalar(t), 0, thr, slow*30*time.Second, nil, nil)
	for i, o := range keys {
		if o.err != nil {
			t.Fatalf("import, party %d: %v", i, o.err)
		}
	}
	return keys
}

// batchItems makes n 32-byte messages; every other one is tweaked (a plain
// and an x-only tweak), and the last repeats the first message untweaked.
func batchItems(t *testing.T, n int) []BatchItem {
	items := make([]BatchItem, n)
	for i := range items {
		items[i].Msg = bytes.Repeat([]byte{byte(i + 1)}, 32)
		if i%2 == 1 {
			items[i].Tweaks = []frost.Tweak{{Value: randomScalar(t).Bytes()}, {Value: randomScalar(t).Bytes(), XOnly: true}}
		}
	}
	items[n-1].Msg = items[0].Msg
	return items
}

func verifyItem(t *testing.T, k *KeyInfo, it BatchItem, sig [64]byte) {
	t.Helper()
	out, err := outputKey(k, it.Tweaks)
	if err != nil {
		t.Fatal(err)
	}
	if err := bip340.Verify(out[:], it.Msg, sig[:]); err != nil {
		t.Fatalf("batch signature does not verify: %v", err)
	}
	verifyBTCEC(t, out, it.Msg, sig)
}

func TestSignBatch(t *testing.T) {
	addr := testkit.Relay(t)
	for _, tc := range []struct{ t, n, items int }{{2, 3, 5}, {3, 5, 6}} {
		t.Run(fmt.Sprintf("%d-of-%d", tc.t, tc.n), func(t *testing.T) {
			q := newQuorum(t, addr, tc.n)
			keys := importedKeys(t, q, tc.t)
			items := batchItems(t, tc.items)
			signers := []int{tc.n - 1, 0}
			if tc.t == 3 {
				signers = []int{1, 2, 4, 0} // u > t
			}
			out := q.runBatch(keys, signers, items, slow*60*time.Second, nil)
			for j, o := range out {
				if o.err != nil {
					t.Fatalf("signer %d: %v", signers[j], o.err)
				}
				if len(o.res) != len(items) {
					t.Fatalf("signer %d: %d results for %d items", signers[j], len(o.res), len(items))
				}
				for i, r := range o.res {
					if r.Err != nil {
						t.Fatalf("signer %d, item %d: %v", signers[j], i, r.Err)
					}
					verifyItem(t, keys[0].info, items[i], r.Sig)
					if r.Sig != out[0].res[i].Sig {
						t.Fatalf("item %d: signers returned different signatures", i)
					}
				}
			}
			// One nonce per message: the same message twice gets two
			// different signatures (different R).
			if bytes.Equal(out[0].res[0].Sig[:32], out[0].res[len(items)-1].Sig[:32]) {
				t.Fatal("two items share a nonce")
			}
		})
	}
}

// TestSignBatchItemFailures: a declined item and an item a signer was asked
// to sign differently fail alone, naming that signer; the rest are signed.
func TestSignBatchItemFailures(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	keys := importedKeys(t, q, 2)
	items := batchItems(t, 4)
	decliner, differ := 2, 0
	out := q.runBatch(keys, []int{0, 2}, items, slow*30*time.Second, func(i int, p *BatchParams) {
		switch i {
		case decliner:
			p.Items[1] = BatchItem{Declined: true}
		case differ:
			p.Items[3].Msg = bytes.Repeat([]byte{0xee}, 32)
		}
	})
	for j, o := range out {
		if o.err != nil {
			t.Fatalf("signer %d: %v", j, o.err)
		}
		for _, i := range []int{0, 2} {
			if o.res[i].Err != nil {
				t.Fatalf("item %d: %v", i, o.res[i].Err)
			}
			verifyItem(t, keys[0].info, items[i], o.res[i].Sig)
		}
		var ie *ItemError
		if !errors.As(o.res[1].Err, &ie) || !errors.Is(ie, ErrItemDeclined) || ie.By != q.ids[decliner].Public() {
			t.Errorf("signer %d, item 1: %v, want declined by party %d", j, o.res[1].Err, decliner)
		}
		if !errors.As(o.res[3].Err, &ie) || !errors.Is(ie, ErrItemMismatch) {
			t.Errorf("signer %d, item 3: %v, want a mismatch", j, o.res[3].Err)
		}
		if o.res[1].Sig != ([64]byte{}) || o.res[3].Sig != ([64]byte{}) {
			t.Errorf("signer %d: a failed item carries a signature", j)
		}
	}
	// Every item declined somewhere: no round 2, every item failed.
	out = q.runBatch(keys, []int{0, 1}, items[:2], slow*30*time.Second, func(i int, p *BatchParams) {
		p.Items[i] = BatchItem{Declined: true}
	})
	for j, o := range out {
		if o.err != nil {
			t.Fatalf("signer %d: %v", j, o.err)
		}
		for i, r := range o.res {
			if !errors.Is(r.Err, ErrItemDeclined) {
				t.Errorf("signer %d, item %d: %v, want declined", j, i, r.Err)
			}
		}
	}
}

// TestSignBatchCheatingSigner: one bad partial signature in a batch aborts
// it, naming the cheater; no honest signer returns any signature.
func TestSignBatchCheatingSigner(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 5)
	keys := importedKeys(t, q, 3)
	cheat := 3
	signers := []int{0, 3, 4}
	n := 0
	out := q.runBatch(keys, signers, batchItems(t, 4), slow*30*time.Second, func(i int, p *BatchParams) {
		if i == cheat {
			p.tamperPsig = func(ps *frost.PartialSig) {
				if n++; n == 3 { // the third item only
					ps[31] ^= 1
				}
			}
		}
	})
	culprit := q.ids[cheat].Public()
	firstHand := false
	for j, i := range signers {
		if i == cheat {
			continue
		}
		var ae *AbortError
		if !errors.As(out[j].err, &ae) || ae.Culprit != culprit ||
			!errors.Is(ae, ErrBadPartialSig) && !errors.Is(ae, ErrRemoteAbort) {
			t.Errorf("signer %d: %v, want ErrBadPartialSig naming %x", i, out[j].err, culprit[:4])
		}
		if out[j].res != nil {
			t.Errorf("signer %d returned results despite the abort", i)
		}
		firstHand = firstHand || errors.Is(ae, ErrBadPartialSig)
	}
	if !firstHand {
		t.Error("no honest signer detected the bad partial signature itself")
	}
}

// TestSignBatchEquivocation: a signer broadcasting different round-1
// tables to different signers is caught by the view hash before anyone
// checks a partial signature, so no honest signer is blamed.
func TestSignBatchEquivocation(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	keys := importedKeys(t, q, 2)
	liar := 0
	out := q.runBatch(keys, []int{0, 1, 2}, batchItems(t, 2), slow*30*time.Second, func(i int, p *BatchParams) {
		if i == liar {
			p.split = func(round uint8, to envelope.Party, payload []byte) ([]byte, bool) {
				if round == roundNonce && to == q.ids[2].Public() {
					payload[0] = 0 // party 2 hears item 0 declined
				}
				return payload, true
			}
		}
	})
	expectNoHonestBlamed(t, q, []int{1, 2}, func(j int) error { return out[j].err })
}

// BenchmarkSignBatch16 compares, per message, one 2-of-3 batch of 16
// messages with 16 single signing ceremonies, through a loopback relay
// whose room rate limit is lifted (16 single signs take 16 rooms).
func BenchmarkSignBatch16(b *testing.B) {
	addr := testkit.Relay(b, relay.Config{ClientRoomRate: 1e6, ClientRoomBurst: 1 << 20})
	q := newQuorum(&testing.T{}, addr, 3)
	keys := q.runImport(randomScalar(b), 0, 2, 30*time.Second, nil, nil)
	const n = 16
	items := make([]BatchItem, n)
	for i := range items {
		items[i].Msg = bytes.Repeat([]byte{byte(i)}, 32)
	}
	done := 0
	b.Run("single", func(b *testing.B) {
		for range b.N {
			for _, it := range items {
				if out := q.runSign(keys, []int{0, 2}, it.Msg, nil, 30*time.Second, nil); out[0].err != nil {
					b.Fatal(out[0].err)
				}
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*n), "ms/msg")
		done = b.N
	})
	if done == 0 {
		b.Fatal("the single ceremonies did not complete (the quorum's helpers end the goroutine on failure)")
	}
	b.Run("batch", func(b *testing.B) {
		for range b.N {
			if out := q.runBatch(keys, []int{0, 2}, items, 30*time.Second, nil); out[0].err != nil {
				b.Fatal(out[0].err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N*n), "ms/msg")
	})
}
