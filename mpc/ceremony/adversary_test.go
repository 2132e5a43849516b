package ceremony

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"slices"
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

// expectAbort checks that every listed party failed with an error of class
// want (or a remote abort reporting it), naming culprit when one is given,
// and holds nothing certified. Someone must have seen the class first-hand:
// remote aborts alone would mean it was never detected.
func expectAbort(t *testing.T, out []*importOutcome, honest []int, want error, culprit *envelope.Party) {
	t.Helper()
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
		if o.certified != 0 {
			t.Errorf("party %d certified despite the failure", i)
		}
		var ae *AbortError
		if !errors.As(o.err, &ae) {
			t.Errorf("party %d: want an abort, got %v", i, o.err)
			continue
		}
		if want != nil && !errors.Is(ae, want) && !errors.Is(ae, ErrRemoteAbort) {
			t.Errorf("party %d: abort %v, want class %v", i, ae, want)
		}
		if culprit != nil && ae.Culprit != *culprit && !errors.Is(ae, ErrRemoteAbort) {
			t.Errorf("party %d: culprit %x, want %x (%v)", i, ae.Culprit[:4], culprit[:4], ae)
		}
	}
}

// expectStates checks what each party holds ("none", "pending", "ready"),
// and that a pending party's error says so.
func expectStates(t *testing.T, out []*importOutcome, want ...string) {
	t.Helper()
	for i, o := range out {
		if got := o.state(); got != want[i] {
			t.Errorf("party %d holds %s, want %s (err: %v)", i, got, want[i], o.err)
		}
		if want[i] == "pending" && !errors.Is(o.err, ErrPending) {
			t.Errorf("party %d is pending but answered %v", i, o.err)
		}
	}
}

// refuseDeal is a transport whose relay refuses every deal post.
type refuseDeal struct{ Transport }

func (r refuseDeal) Send(ctx context.Context, to envelope.Party, body []byte) error {
	if e, err := envelope.Unmarshal(body); err == nil && e.Round == roundDeal {
		return errors.New("relay: 503 (test)")
	}
	return r.Transport.Send(ctx, to, body)
}

// dealSplit replaces the importer's deal broadcast with f's version per
// recipient id.
func dealSplit(q *quorum, f func(to int, payload []byte) []byte) splitFunc {
	return func(round uint8, to envelope.Party, payload []byte) ([]byte, bool) {
		if round != roundDeal {
			return payload, true
		}
		return f(slices.Index(q.parties(), to), payload), true
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
				p.split = dealSplit(q, func(to int, payload []byte) []byte {
					if to == victim {
						payload[len(payload)-1] ^= 1 // the victim's box (the last id)
					}
					return payload
				})
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{1, 2}, ErrBadShare, &culprit)
		if !errors.Is(out[victim].err, ErrBadShare) {
			t.Errorf("victim: %v, want ErrBadShare", out[victim].err)
		}
		// The victim refused before signing: that proves no certificate can
		// exist, so the others discarded what they had prepared.
		expectStates(t, out, "none", "none", "none")
	})

	// The recipients' check of the deal against its commitments runs
	// alongside their durable prepare (runDeal's overlap): a deal that fails
	// it only there must still end with the prepared shares discarded and
	// nobody signed (DESIGN §3).
	t.Run("public shares that contradict the commitments", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		importer := 0
		gen := btcec.Generator().SerializeCompressed()
		out := q.runImport(x, importer, thr, slow*10*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				p.split = dealSplit(q, func(to int, payload []byte) []byte {
					off := 1 + 33*thr + 33*1 // party 1's published public share
					copy(payload[off:off+33], gen)
					return payload
				})
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{1, 2}, ErrProtocol, &culprit)
		// The first recipient to fail may refuse before the other even has
		// the deal (it then aborts unprepared); the first has prepared.
		overlapped := 0
		for _, i := range []int{1, 2} {
			if out[i].prepared != out[i].discarded {
				t.Errorf("party %d prepared %d and discarded %d times", i, out[i].prepared, out[i].discarded)
			}
			overlapped += out[i].discarded
		}
		if overlapped == 0 {
			t.Error("no recipient prepared before its check failed: the overlap's error path was not taken")
		}
		expectStates(t, out, "none", "none", "none")
	})

	// The importer posts its deal in the background while it prepares
	// (runDeal's overlap): a post the relay refuses must end with its
	// prepared share discarded and nobody signed.
	t.Run("the deal's post fails", func(t *testing.T) {
		t.Parallel() // the recipients wait for their deadline
		q := newQuorum(t, testkit.Relay(t), n)
		importer := 0
		out := q.runImport(x, importer, thr, slow*2*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				p.Transport = refuseDeal{p.Transport}
			}
		}, nil)
		if o := out[importer]; o.err == nil || o.prepared != 1 || o.discarded != 1 {
			t.Errorf("importer: err %v, prepared %d, discarded %d; want an error after it prepared and discarded", o.err, o.prepared, o.discarded)
		}
		expectStates(t, out, "none", "none", "none")
	})

	t.Run("equivocating importer", func(t *testing.T) {
		t.Parallel() // waits for its deadline
		q := newQuorum(t, testkit.Relay(t), n)
		importer := 1
		out := q.runImport(x, importer, thr, slow*2*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				p.split = dealSplit(q, func(to int, payload []byte) []byte {
					if to != 2 {
						return payload
					}
					// A second, self-consistent dealing for party 2 only.
					d, err := vss.Deal(randomScalar(t), thr, n, nil)
					if err != nil {
						t.Error(err)
						return payload
					}
					session := envelope.SessionID(ImportLabel, p.Room, q.parties(), thr, n, nil)
					other, err := dealPayload(q.ids[importer], session, q.parties(), d, nil)
					if err != nil {
						t.Error(err)
					}
					return other
				})
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{0, 2}, ErrEquivocation, &culprit)
		// The parties announce their transcripts before signing and see
		// them differ: nobody signs, so nothing can be certified and every
		// party discards what it prepared.
		expectStates(t, out, "none", "none", "none")
	})

	t.Run("commitment vector of the wrong length", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		importer := 0
		out := q.runImport(x, importer, thr, slow*10*time.Second, func(i int, p *ImportParams) {
			if i == importer {
				p.split = dealSplit(q, func(to int, payload []byte) []byte {
					d, _ := vss.Deal(randomScalar(t), thr+1, n, nil)
					session := envelope.SessionID(ImportLabel, p.Room, q.parties(), thr, n, nil)
					other, _ := dealPayload(q.ids[importer], session, q.parties(), d, nil)
					return other
				})
			}
		}, nil)
		culprit := q.ids[importer].Public()
		expectAbort(t, out, []int{1, 2}, ErrProtocol, &culprit)
		expectStates(t, out, "none", "none", "none")
	})

	t.Run("party never shows up", func(t *testing.T) {
		t.Parallel() // waits for its deadline
		q := newQuorum(t, testkit.Relay(t), n)
		out := q.runImport(x, 0, thr, slow*2*time.Second, nil, map[int]bool{2: true})
		culprit := q.ids[2].Public()
		// The importer and party 1 prepared and wait for party 2 to
		// announce its prepare before signing: they never sign, so no
		// certificate can exist and they discard.
		expectAbort(t, out, []int{0, 1}, ErrTimeout, &culprit)
		expectStates(t, out[:2], "none", "none")
	})

	t.Run("relay tampers with the deal", func(t *testing.T) {
		t.Parallel() // waits for its deadline
		addr := testkit.Relay(t, relay.Config{Intercept: flipByte(func(body []byte) bool {
			e, err := envelope.Unmarshal(body)
			return err == nil && e.Round == roundDeal
		}, -70)})
		q := newQuorum(t, addr, n)
		before := DroppedEnvelopes()["bad_signature"]
		out := q.runImport(x, 0, thr, slow*2*time.Second, nil, nil)
		// The recipients drop the forged deal and refuse at their deadline;
		// the importer, which prepared, discards on their refusals.
		expectAbort(t, out, []int{1, 2}, ErrTimeout, &envelope.Broadcast)
		expectStates(t, out, "none", "none", "none")
		if after := DroppedEnvelopes()["bad_signature"]; after < before+2 {
			t.Errorf("bad_signature drops %d → %d, want ≥ 2 more", before, after)
		}
	})

	t.Run("relay tampers with transcript signatures", func(t *testing.T) {
		t.Parallel() // waits for its deadline
		addr := testkit.Relay(t, relay.Config{Intercept: flipByte(func(body []byte) bool {
			e, err := envelope.Unmarshal(body)
			return err == nil && (e.Round == roundCertify || e.Round == roundCert)
		}, 6)}) // the round byte
		q := newQuorum(t, addr, n)
		out := q.runImport(x, 0, thr, slow*2*time.Second, nil, nil)
		expectAbort(t, out, []int{0, 1, 2}, ErrTimeout, &envelope.Broadcast)
		expectStates(t, out, "pending", "pending", "pending")
	})

	t.Run("envelope from a non-member is dropped", func(t *testing.T) {
		addr := testkit.Relay(t)
		q := newQuorum(t, addr, n)
		outsider, _ := envelope.GenerateIdentity()
		room := q.room(n)
		// The outsider's envelope arrives first, through a member's seat
		// (as a dishonest relay could inject it).
		session := envelope.SessionID(ImportLabel, room, q.parties(), thr, n, nil)
		raw, err := envelope.NewSender(outsider, envelope.KindImport, session).Seal(roundDeal, envelope.Broadcast, []byte("hi"), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := postAs(q, room, q.ids[0].Public(), "", raw); err != nil {
			t.Fatal(err)
		}
		garbage := []byte("garbage")
		if err := postAs(q, room, q.ids[0].Public(), "", garbage); err != nil {
			t.Fatal(err)
		}
		before := DroppedEnvelopes()
		out := q.runImportIn(room, x, 0, thr, slow*10*time.Second, nil, nil, nil)
		for i, o := range out {
			if o.err != nil {
				t.Errorf("party %d: %v", i, o.err)
			}
		}
		expectStates(t, out, "ready", "ready", "ready")
		after := DroppedEnvelopes()
		if after["non_member"] < before["non_member"]+2 || after["malformed"] < before["malformed"]+2 {
			t.Errorf("drops before %v, after %v: want ≥ 2 more non_member and malformed", before, after)
		}
	})

	t.Run("envelope replayed from an earlier room is dropped", func(t *testing.T) {
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
		if err := postAs(q, room, e.From, "", old); err != nil {
			t.Fatal(err)
		}
		out := q.runImportIn(room, x, 0, thr, slow*10*time.Second, nil, nil, nil)
		expectStates(t, out, "ready", "ready", "ready")
	})

	t.Run("unicast in a broadcast round is dropped", func(t *testing.T) {
		// Issue 10's split: a member re-sends its broadcast as a unicast to
		// one party. Typed rounds drop it; here the broadcast follows, so
		// the import completes.
		q := newQuorum(t, testkit.Relay(t), n)
		room := q.room(n)
		session := envelope.SessionID(ImportLabel, room, q.parties(), thr, n, nil)
		raw, err := envelope.NewSender(q.ids[2], envelope.KindImport, session).Seal(roundCertify, q.ids[0].Public(), make([]byte, 96), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := postAs(q, room, q.ids[2].Public(), hex.EncodeToString(q.ids[0].Public().Bytes()), raw); err != nil {
			t.Fatal(err)
		}
		before := DroppedEnvelopes()["mistyped"]
		out := q.runImportIn(room, x, 1, thr, slow*10*time.Second, nil, nil, nil)
		if DroppedEnvelopes()["mistyped"] <= before {
			t.Error("the unicast was not counted as mistyped")
		}
		// The unicast used its own channel (2 → 0), so party 2's broadcasts
		// still arrive in sequence: all complete.
		expectStates(t, out, "ready", "ready", "ready")
	})
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
		firstHand = firstHand || errors.Is(ae, ErrBadPartialSig)
	}
	if !firstHand {
		t.Error("no honest signer detected the bad partial signature itself")
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

// TestImportCommitFailure: a party whose durable write fails (HSM or store
// down) refuses instead of signing, so no certificate can exist: nobody
// answers success and the others discard what they prepared.
func TestImportCommitFailure(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	x := randomScalar(t)
	for _, failing := range []int{0, 2} { // the importer, a recipient
		out := q.runImportIn(q.room(3), x, 0, 2, slow*20*time.Second, nil, nil,
			map[int]error{failing: errors.New("hsm: token unavailable")})
		if !errors.Is(out[failing].err, ErrCommit) {
			t.Errorf("failing party %d: %v, want ErrCommit", failing, out[failing].err)
		}
		for i, o := range out {
			if o.err == nil {
				t.Errorf("party %d answered success while party %d stored nothing", i, failing)
			}
		}
		expectStates(t, out, "none", "none", "none")
	}
}

// postAs posts raw from member from's seat in room to `to` (hex, empty =
// broadcast), as a dishonest relay could inject it: an honest relay seats
// only a member that signs its claim.
func postAs(q *quorum, room string, from envelope.Party, to string, raw []byte) error {
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
	_, err = seat.Post(context.Background(), to, raw)
	return err
}
