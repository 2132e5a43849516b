package ceremony

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/frost"
	"github.com/quorumd/quorumd/mpc/relay"
	"github.com/quorumd/quorumd/mpc/vss"
)

// expectAbort checks that every listed party aborted with an error of class
// want (or a remote abort reporting it), naming culprit when one is given,
// and committed nothing.
func expectAbort(t *testing.T, out []*importOutcome, honest []int, want error, culprit *envelope.Party) {
	t.Helper()
	// Someone must have detected the failure first-hand: remote aborts alone
	// would mean the class under test was never seen.
	firstHand := want == nil
	for _, i := range honest {
		if errors.Is(out[i].err, want) && !errors.Is(out[i].err, ErrRemoteAbort) {
			firstHand = true
		}
	}
	if !firstHand {
		t.Errorf("no honest party detected %v itself", want)
	}
	for _, i := range honest {
		o := out[i]
		if o.commits != 0 {
			t.Errorf("party %d committed despite the failure", i)
		}
		var ae *AbortError
		if !errors.As(o.err, &ae) {
			t.Errorf("party %d: want an abort, got %v", i, o.err)
			continue
		}
		if want != nil && !errors.Is(ae, want) && !errors.Is(ae, ErrRemoteAbort) {
			t.Errorf("party %d: abort %v, want class %v", i, ae, want)
		}
		if culprit != nil && ae.Culprit != *culprit {
			t.Errorf("party %d: culprit %x, want %x (%v)", i, ae.Culprit[:4], culprit[:4], ae)
		}
	}
}

func TestImportAdversarial(t *testing.T) {
	const n, thr = 3, 2
	x := randomScalar(t)

	t.Run("bad share to one recipient", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		importer, victim := 0, 2
		out := q.runImport(x, importer, thr, slow*10*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				p.tamperDeal = func(_ [32]byte, id int, payload []byte) []byte {
					if id == victim {
						payload[len(payload)-1] ^= 1 // share + small delta
					}
					return payload
				}
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{1, 2}, ErrBadShare, &culprit)
		if !errors.Is(out[victim].err, ErrBadShare) {
			t.Errorf("victim: %v, want ErrBadShare", out[victim].err)
		}
	})

	t.Run("equivocating importer", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		importer := 1
		out := q.runImport(x, importer, thr, slow*10*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				id := q.ids[importer]
				p.tamperDeal = func(session [32]byte, to int, payload []byte) []byte {
					if to != 2 {
						return payload
					}
					// A second, self-consistent dealing for party 2 only.
					d, err := vss.Deal(randomScalar(t), thr, n, nil)
					if err != nil {
						t.Error(err)
						return payload
					}
					sig, _ := signHash(id, commitmentsHash(session, d.Commitments))
					return dealPayload(d.Commitments, sig, &d.Shares[to])
				}
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{0, 2}, ErrEquivocation, &culprit)
	})

	t.Run("commitment vector of the wrong length", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		importer := 0
		out := q.runImport(x, importer, thr, slow*10*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				id := q.ids[importer]
				p.tamperDeal = func(session [32]byte, to int, payload []byte) []byte {
					d, _ := vss.Deal(randomScalar(t), thr+1, n, nil)
					sig, _ := signHash(id, commitmentsHash(session, d.Commitments))
					return dealPayload(d.Commitments, sig, &d.Shares[to])
				}
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{1, 2}, ErrProtocol, &culprit)
	})

	t.Run("party never shows up", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		out := q.runImport(x, 0, thr, slow*3*time.Second, nil, map[int]bool{2: true})
		culprit := q.ids[2].Public()
		// The importer and party 1 both wait for party 2's confirmation.
		expectAbort(t, out, []int{0, 1}, ErrTimeout, &culprit)
	})

	t.Run("relay tampers with ciphertext", func(t *testing.T) {
		addr := testkit.Relay(t, relay.Config{Intercept: flipByte(func(body []byte) bool {
			e, err := envelope.Unmarshal(body)
			return err == nil && e.Flags&envelope.FlagEncrypted != 0
		}, -70)})
		q := newQuorum(t, addr, n)
		out := q.runImport(x, 0, thr, slow*10*time.Second, nil, nil)
		expectAbort(t, out, []int{0, 1, 2}, ErrRejected, &envelope.Broadcast)
	})

	t.Run("relay tampers with headers", func(t *testing.T) {
		addr := testkit.Relay(t, relay.Config{Intercept: flipByte(func(body []byte) bool {
			e, err := envelope.Unmarshal(body)
			return err == nil && e.Round == roundConfirm
		}, 6)}) // the round byte
		q := newQuorum(t, addr, n)
		out := q.runImport(x, 0, thr, slow*10*time.Second, nil, nil)
		expectAbort(t, out, []int{0, 1, 2}, ErrRejected, &envelope.Broadcast)
	})

	t.Run("relay drops one party's envelopes", func(t *testing.T) {
		var dropped string
		var mu sync.Mutex
		addr := testkit.Relay(t, relay.Config{Intercept: func(room, from, to string, body []byte) ([]byte, bool) {
			mu.Lock()
			defer mu.Unlock()
			return body, from == dropped
		}})
		q := newQuorum(t, addr, n)
		mu.Lock()
		dropped = hex.EncodeToString(q.ids[1].Public().Bytes())
		mu.Unlock()
		start := time.Now()
		out := q.runImport(x, 0, thr, slow*3*time.Second, nil, nil)
		expectAbort(t, out, []int{0, 1, 2}, ErrTimeout, nil)
		culprit := q.ids[1].Public()
		expectAbort(t, out, []int{0, 2}, ErrTimeout, &culprit)
		if el := time.Since(start); el > slow*15*time.Second {
			t.Errorf("timeout took %v", el)
		}
	})

	t.Run("envelope from a non-member", func(t *testing.T) {
		addr := testkit.Relay(t)
		q := newQuorum(t, addr, n)
		outsider, _ := envelope.GenerateIdentity()
		room := q.room(n)
		// The outsider posts first, under a member's relay name.
		session := envelope.SessionID(ImportLabel, room, q.parties(), thr, n, nil)
		raw, err := envelope.NewSender(outsider, envelope.KindImport, session).Seal(roundDeal, envelope.Broadcast, []byte("hi"), false)
		if err != nil {
			t.Fatal(err)
		}
		// The relay cannot tell it from the member's own: it arrives
		// through member 0's seat (as a dishonest relay could forge it).
		if err := postAs(q, room, q.ids[0].Public(), raw); err != nil {
			t.Fatal(err)
		}
		out := q.runImportInRoom(room, x, 0, thr, slow*10*time.Second)
		culprit := outsider.Public()
		// The importer's own broadcast is not echoed to it, so it hears of
		// the outsider through the others' abort notices.
		expectAbort(t, out, []int{0, 1, 2}, envelope.ErrNonMember, &culprit)
	})

	t.Run("envelope replayed from an earlier room", func(t *testing.T) {
		var mu sync.Mutex
		var recorded [][]byte
		addr := testkit.Relay(t, relay.Config{Intercept: func(room, from, to string, body []byte) ([]byte, bool) {
			mu.Lock()
			defer mu.Unlock()
			if to == "" {
				recorded = append(recorded, bytes.Clone(body))
			}
			return body, false
		}})
		q := newQuorum(t, addr, n)
		first := q.runImport(x, 0, thr, slow*10*time.Second, nil, nil)
		for i, o := range first {
			if o.err != nil {
				t.Fatalf("first import, party %d: %v", i, o.err)
			}
		}
		room := q.room(n)
		mu.Lock()
		old := recorded[0]
		mu.Unlock()
		e, _ := envelope.Unmarshal(old)
		if err := postAs(q, room, e.From, old); err != nil {
			t.Fatal(err)
		}
		out := q.runImportInRoom(room, x, 0, thr, slow*10*time.Second)
		// A replay is the relay's doing: no party is blamed.
		expectAbort(t, out, []int{0, 1, 2}, envelope.ErrWrongSession, &envelope.Broadcast)
	})
}

// runImportInRoom is runImport in an existing room, all parties honest.
func (q *quorum) runImportInRoom(room string, x *btcec.ModNScalar, importer, thr int, timeout time.Duration) []*importOutcome {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]*importOutcome, len(q.ids))
	var wg sync.WaitGroup
	for i, id := range q.ids {
		o := &importOutcome{}
		out[i] = o
		p := ImportParams{Room: room, Identity: id, Others: q.others(i), Threshold: thr,
			Transport: RelayTransport(q.client, room, id, append([]envelope.Party{id.Public()}, q.others(i)...))}
		if i == importer {
			xc := *x
			p.PrivateKey = &xc
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.info, o.err = Import(ctx, p, func(*KeyShare) error { o.commits++; return nil })
		}()
	}
	wg.Wait()
	return out
}

// flipByte returns an intercept that flips the byte at offset off (negative:
// from the end) of every envelope match selects.
func flipByte(match func([]byte) bool, off int) relay.InterceptFunc {
	return func(room, from, to string, body []byte) ([]byte, bool) {
		if !match(body) {
			return body, false
		}
		b := bytes.Clone(body)
		if off < 0 {
			b[len(b)+off] ^= 0x40
		} else {
			b[off] ^= 0x40
		}
		return b, false
	}
}

func TestSignInvalidPartialSignature(t *testing.T) {
	addr := testkit.Relay(t)
	q := newQuorum(t, addr, 3)
	x := randomScalar(t)
	keys := q.runImport(x, 0, 2, slow*20*time.Second, nil, nil)
	for i, o := range keys {
		if o.err != nil {
			t.Fatalf("import, party %d: %v", i, o.err)
		}
	}
	cheat := 2
	signers := []int{0, 1, 2}
	msg := bytes.Repeat([]byte{7}, 32)
	out := q.runSign(keys, signers, msg, nil, slow*10*time.Second, func(i int, p *SignParams) {
		if i == cheat {
			p.tamperPsig = func(ps *frost.PartialSig) { ps[31] ^= 1 }
		}
	})
	culprit := q.ids[cheat].Public()
	for j, i := range signers {
		if i == cheat {
			continue
		}
		var ae *AbortError
		if !errors.As(out[j].err, &ae) || !errors.Is(ae, ErrBadPartialSig) || ae.Culprit != culprit {
			t.Errorf("signer %d: %v, want ErrBadPartialSig naming %x", i, out[j].err, culprit[:4])
		}
	}
}

func TestSignWithTweaks(t *testing.T) {
	addr := testkit.Relay(t)
	q := newQuorum(t, addr, 3)
	x := randomScalar(t)
	keys := q.runImport(x, 1, 2, slow*20*time.Second, nil, nil)
	for i, o := range keys {
		if o.err != nil {
			t.Fatalf("import, party %d: %v", i, o.err)
		}
	}
	tw := randomScalar(t).Bytes()
	tweaks := []frost.Tweak{{Value: tw, XOnly: false}, {Value: randomScalar(t).Bytes(), XOnly: true}}
	msg := bytes.Repeat([]byte{9}, 32)
	out := q.runSign(keys, []int{0, 2}, msg, tweaks, slow*20*time.Second, nil)
	tc, err := frost.NewTweakCtx(keys[0].info.ThreshPK)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.ApplyTweaks(tweaks); err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.err != nil {
			t.Fatal(o.err)
		}
		verifyBTCEC(t, tc.XOnlyPubKey(), msg, o.sig)
	}
}

// TestImportCommitFailure: a party whose commit step fails (HSM or store
// down) reports ErrCommit and returns no key; the others are unaffected by
// its local failure.
func TestImportCommitFailure(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	x := randomScalar(t)
	room := q.room(3)
	ctx, cancel := context.WithTimeout(context.Background(), slow*20*time.Second)
	defer cancel()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, id := range q.ids {
		p := ImportParams{Room: room, Identity: id, Others: q.others(i), Threshold: 2,
			Transport: RelayTransport(q.client, room, id, append([]envelope.Party{id.Public()}, q.others(i)...))}
		if i == 0 {
			xc := *x
			p.PrivateKey = &xc
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Import(ctx, p, func(*KeyShare) error {
				if i == 2 {
					return errors.New("hsm: token unavailable")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("healthy parties: %v, %v", errs[0], errs[1])
	}
	if !errors.Is(errs[2], ErrCommit) {
		t.Fatalf("failing commit: %v, want ErrCommit", errs[2])
	}
}

// postAs broadcasts raw from member from's seat in room, as a dishonest
// relay could inject it.
func postAs(q *quorum, room string, from envelope.Party, raw []byte) error {
	var id *envelope.Identity
	for _, c := range q.ids {
		if c.Public() == from {
			id = c
		}
	}
	seat, err := q.client.TakeSeat(context.Background(), room, id, q.parties())
	if err != nil {
		return err
	}
	_, err = seat.Post(context.Background(), "", raw)
	return err
}
