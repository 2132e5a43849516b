package ceremony

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/envelope"
	"github.com/quorumd/quorumd/mpc/frost"
	"github.com/quorumd/quorumd/mpc/relay"
)

// checkInvariant is DESIGN §3's invariant: if any party holds a
// certificate, every honest party holds its share (pending or ready).
func checkInvariant(t *testing.T, out []*importOutcome, honest []int) {
	t.Helper()
	anyReady := false
	for _, o := range out {
		if o.err == nil {
			anyReady = true
		}
	}
	if !anyReady {
		return
	}
	for _, i := range honest {
		if s := out[i].state(); s == "none" {
			t.Errorf("a party answered success while honest party %d stored nothing (err %v)", i, out[i].err)
		}
	}
}

// recoverFrom makes pending party i ready from party j's recovery data, as
// POST /bip340/recover does, and checks the share is the one it prepared.
func recoverFrom(t *testing.T, q *quorum, out []*importOutcome, i, j int) {
	t.Helper()
	data := out[j].rd.Marshal()
	ks, rd, err := Recover(q.ids[i], data)
	if err != nil {
		t.Fatalf("party %d recovering from party %d's data: %v", i, j, err)
	}
	defer ks.Share.Zero()
	if out[i].share != nil && !ks.Share.Equals(out[i].share) {
		t.Fatalf("party %d recovered another share than it prepared", i)
	}
	if err := out[i].Certified(&ks.KeyInfo, rd); err != nil {
		t.Fatal(err)
	}
}

// memberSplit makes party m's certify-round broadcasts reach only the
// parties keep returns true for; sig, when set, replaces the signature m
// sends to a party.
func memberSplit(q *quorum, keep func(round uint8, to int) bool, payload func(to int, p []byte) []byte) splitFunc {
	return func(round uint8, to envelope.Party, p []byte) ([]byte, bool) {
		id := slices.Index(q.parties(), to)
		if !keep(round, id) {
			return nil, false
		}
		if payload != nil && round == roundCertify {
			p = payload(id, p)
		}
		return p, true
	}
}

// TestImportSplit plays issue 10's split: a member sends its transcript
// signature to a subset, to nobody, or signs different transcripts for
// different parties. Every honest party ends ready or pending, a pending one
// becomes ready from any certified peer's recovery data, and nobody succeeds
// while an honest party holds nothing.
func TestImportSplit(t *testing.T) {
	const n, thr = 3, 2
	x := randomScalar(t)
	cheat := 2

	t.Run("signature to a subset", func(t *testing.T) {
		q := newQuorum(t, testkit.Relay(t), n)
		out := q.runImport(x, 0, thr, slow*10*time.Second, func(i int, p *ImportParams) {
			if i == cheat {
				p.split = memberSplit(q, func(round uint8, to int) bool { return round != roundCertify && round != roundCert || to == 0 }, nil)
			}
		}, nil)
		checkInvariant(t, out, []int{0, 1})
		// Party 0 holds every signature and passes the certificate on.
		expectStates(t, out, "ready", "ready", "ready")
	})

	t.Run("signature to nobody", func(t *testing.T) {
		t.Parallel() // waits for its deadline
		q := newQuorum(t, testkit.Relay(t), n)
		out := q.runImport(x, 0, thr, slow*2*time.Second, func(i int, p *ImportParams) {
			if i == cheat {
				p.split = memberSplit(q, func(round uint8, to int) bool { return round != roundCertify && round != roundCert }, nil)
			}
		}, nil)
		checkInvariant(t, out, []int{0, 1})
		// The cheat alone holds the certificate: the others stay pending.
		expectStates(t, out, "pending", "pending", "ready")
		for _, i := range []int{0, 1} {
			var ae *AbortError
			if !errors.As(out[i].err, &ae) || ae.Culprit != q.ids[cheat].Public() {
				t.Errorf("party %d: %v, want the cheat named", i, out[i].err)
			}
		}
		recoverFrom(t, q, out, 0, cheat)
		recoverFrom(t, q, out, 1, 0) // any certified peer's copy will do
		expectStates(t, out[:2], "ready", "ready")
		// The recovered parties sign with the others.
		msg := bytes.Repeat([]byte{3}, 32)
		for i := range out {
			ki := out[i].rd.keyInfo(t, q.ids[i])
			out[i].info = &ki
		}
		for _, s := range q.runSign(out, []int{0, 1}, msg, nil, slow*10*time.Second, nil) {
			if s.err != nil {
				t.Fatal(s.err)
			}
			verifyBTCEC(t, xonly(x), msg, s.sig)
		}
	})

	t.Run("different transcripts to different parties", func(t *testing.T) {
		t.Parallel() // waits for its deadline
		addr := testkit.Relay(t, relay.Config{Intercept: func(room, from, to string, body []byte) ([]byte, bool) {
			e, err := envelope.Unmarshal(body)
			return body, err == nil && e.Round == roundCert // nobody passes certificates on
		}})
		q := newQuorum(t, addr, n)
		out := q.runImport(x, 0, thr, slow*2*time.Second, func(i int, p *ImportParams) {
			if i == cheat {
				p.split = memberSplit(q, func(uint8, int) bool { return true }, func(to int, p []byte) []byte {
					if to == 1 {
						var other [32]byte
						other[0] = 1
						sig, err := signTranscript(q.ids[cheat], other)
						if err != nil {
							t.Error(err)
						}
						copy(p[:32], other[:])
						copy(p[32:96], sig[:])
					}
					return p
				})
			}
		}, nil)
		checkInvariant(t, out, []int{0, 1})
		expectStates(t, out, "ready", "pending", "ready")
		var ae *AbortError
		if !errors.As(out[1].err, &ae) || !errors.Is(ae, ErrMismatch) || ae.Culprit != q.ids[cheat].Public() {
			t.Errorf("party 1: %v, want ErrMismatch naming the cheat", out[1].err)
		}
		recoverFrom(t, q, out, 1, 0)
		expectStates(t, out, "ready", "ready", "ready")
	})
}

// keyInfo is the public KeyInfo recovery data describes (tests only).
func (rd *RecoveryData) keyInfo(t *testing.T, id *envelope.Identity) KeyInfo {
	t.Helper()
	ks, _, err := Recover(id, rd.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	ks.Share.Zero()
	return ks.KeyInfo
}

// TestRecoverRejects: recovery verifies everything before it hands out a
// share.
func TestRecoverRejects(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	out := q.runImport(randomScalar(t), 0, 2, slow*10*time.Second, nil, nil)
	for i, o := range out {
		if o.err != nil {
			t.Fatalf("party %d: %v", i, o.err)
		}
	}
	good := out[1].rd.Marshal()
	if _, _, err := Recover(q.ids[2], good); err != nil {
		t.Fatalf("valid data: %v", err)
	}
	stranger, _ := envelope.GenerateIdentity()
	pending := *out[1].rd
	pending.Cert = nil
	badCert := *out[1].rd
	badCert.Cert = slices.Clone(badCert.Cert)
	badCert.Cert[2][5] ^= 1
	otherRoom := *out[1].rd
	otherRoom.Room += "x"
	cases := map[string]struct {
		id   *envelope.Identity
		data []byte
		want error
	}{
		"not a party":          {stranger, good, ErrNotAParty},
		"no certificate":       {q.ids[2], pending.Marshal(), ErrRecovery},
		"forged certificate":   {q.ids[2], badCert.Marshal(), ErrRecovery},
		"another session":      {q.ids[2], otherRoom.Marshal(), ErrRecovery},
		"tampered deal":        {q.ids[2], flipAt(good, 200), ErrRecovery},
		"truncated":            {q.ids[2], good[:len(good)-1], ErrRecovery},
		"trailing":             {q.ids[2], append(slices.Clone(good), 0), ErrRecovery},
		"empty":                {q.ids[2], nil, ErrRecovery},
		"certificate of other": {q.ids[2], withCertOf(t, q, out[1].rd), ErrRecovery},
	}
	for name, c := range cases {
		if _, _, err := Recover(c.id, c.data); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func flipAt(b []byte, i int) []byte {
	b = slices.Clone(b)
	b[i] ^= 1
	return b
}

// withCertOf pairs rd's deal with the certificate of another import of the
// same parties.
func withCertOf(t *testing.T, q *quorum, rd *RecoveryData) []byte {
	other := q.runImport(randomScalar(t), 1, 2, slow*10*time.Second, nil, nil)
	if other[0].err != nil {
		t.Fatal(other[0].err)
	}
	mixed := *rd
	mixed.Cert = other[0].rd.Cert
	return mixed.Marshal()
}

// TestSignRecoversPendingSigner: a signer whose key is pending (it never
// got the certificate) becomes ready from the certificate another signer
// attaches to its nonce, then signs; without one it refuses to sign.
func TestSignRecoversPendingSigner(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	x := randomScalar(t)
	keys := q.runImport(x, 0, 2, slow*10*time.Second, nil, nil)
	for i, o := range keys {
		if o.err != nil {
			t.Fatalf("party %d: %v", i, o.err)
		}
	}
	msg := bytes.Repeat([]byte{5}, 32)
	var adopted Certificate
	pend := func(i int, p *SignParams) {
		if i == 1 {
			p.Certificate, p.Pending = nil, true
			p.OnCertified = func(c Certificate) error { adopted = c; return nil }
		}
	}
	for _, s := range q.runSign(keys, []int{0, 1}, msg, nil, slow*10*time.Second, pend) {
		if s.err != nil {
			t.Fatal(s.err)
		}
		verifyBTCEC(t, xonly(x), msg, s.sig)
	}
	if adopted == nil || CheckCertificate(keys[1].info, adopted) != nil {
		t.Fatal("the pending signer did not adopt a valid certificate")
	}
	// Two pending signers: nobody can vouch for the key.
	both := func(i int, p *SignParams) { p.Certificate, p.Pending = nil, true }
	out := q.runSign(keys, []int{1, 2}, msg, nil, slow*10*time.Second, both)
	for _, s := range out {
		if !errors.Is(s.err, ErrPending) && !errors.Is(s.err, ErrRemoteAbort) {
			t.Errorf("pending signers without a certificate: %v, want ErrPending", s.err)
		}
	}
}

// TestSignPartialSignaturesEncrypted: what the relay carries in the partial
// signature round is encrypted to each other signer (DESIGN §4): one
// broadcast per signer of one box per other signer, which opens for its
// recipient only and does not show the partial signature.
func TestSignPartialSignaturesEncrypted(t *testing.T) {
	var mu sync.Mutex
	var psigs []*envelope.Envelope
	addr := testkit.Relay(t, relay.Config{Intercept: func(room, from, to string, body []byte) ([]byte, bool) {
		if e, err := envelope.Unmarshal(body); err == nil && e.Kind == envelope.KindSign && e.Round == roundPsig {
			mu.Lock()
			psigs = append(psigs, e)
			mu.Unlock()
		}
		return body, false
	}})
	q := newQuorum(t, addr, 3)
	x := randomScalar(t)
	keys := q.runImport(x, 0, 2, slow*10*time.Second, nil, nil)
	for i, o := range keys {
		if o.err != nil {
			t.Fatalf("party %d: %v", i, o.err)
		}
	}
	msg := bytes.Repeat([]byte{8}, 32)
	for _, s := range q.runSign(keys, []int{0, 1, 2}, msg, nil, slow*10*time.Second, nil) {
		if s.err != nil {
			t.Fatal(s.err)
		}
		verifyBTCEC(t, xonly(x), msg, s.sig)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(psigs) != 3 {
		t.Fatalf("%d partial signature envelopes, want 3 (one broadcast per signer)", len(psigs))
	}
	boxSize := frost.PartialSigSize + envelope.BoxOverhead
	ad := []byte{'b', roundPsig}
	for _, e := range psigs {
		// A 32-byte view of round 1, then the boxes.
		if !e.To.IsBroadcast() || len(e.Payload) != 32+2*boxSize {
			t.Fatalf("partial signature round: to %x, %d bytes, want a broadcast of a view and 2 boxes", e.To[:4], len(e.Payload))
		}
		e.Payload = e.Payload[32:]
		var to []*envelope.Identity // the sender's recipients, in id order
		for _, id := range q.ids {
			if id.Public() != e.From {
				to = append(to, id)
			}
		}
		for i, box := range [][]byte{e.Payload[:boxSize], e.Payload[boxSize:]} {
			psig, err := envelope.OpenBox(to[i], nil, e.From, e.Session, ad, box)
			if err != nil || len(psig) != frost.PartialSigSize || bytes.Contains(e.Payload, psig) {
				t.Fatalf("box %d: %v (or the partial signature shows in the clear)", i, err)
			}
			if _, err := envelope.OpenBox(to[1-i], nil, e.From, e.Session, ad, box); err == nil {
				t.Fatalf("box %d opens for another signer", i)
			}
		}
	}
}

// TestSignEquivocation: a signer broadcasting different nonces to different
// signers is caught by round 2's view of round 1 before anyone checks a
// partial signature, so no honest signer is blamed.
func TestSignEquivocation(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	keys := importedKeys(t, q, 2)
	liar := 0
	out := q.runSign(keys, []int{0, 1, 2}, bytes.Repeat([]byte{3}, 32), nil, slow*30*time.Second, func(i int, p *SignParams) {
		if i == liar {
			p.split = func(round uint8, to envelope.Party, payload []byte) ([]byte, bool) {
				if round == roundNonce && to == q.ids[2].Public() {
					_, pn, _ := frost.NonceGen(nil, &frost.NonceGenArgs{})
					copy(payload, pn[:]) // party 2 hears another nonce
				}
				return payload, true
			}
		}
	})
	expectNoHonestBlamed(t, q, []int{1, 2}, func(j int) error { return out[j].err })
}

// TestSignRoomSizeFromSeat: with no signer count, a signer takes the
// room's size from its seat claim's answer (after posting its nonce).
func TestSignRoomSizeFromSeat(t *testing.T) {
	q := newQuorum(t, testkit.Relay(t), 3)
	keys := importedKeys(t, q, 2)
	msg := bytes.Repeat([]byte{4}, 32)
	for j, s := range q.runSign(keys, []int{0, 2}, msg, nil, slow*30*time.Second, func(i int, p *SignParams) { p.Signers = 0 }) {
		if s.err != nil {
			t.Fatalf("signer %d: %v", j, s.err)
		}
		verifyBTCEC(t, keys[0].info.XOnly(), msg, s.sig)
	}
}

// expectNoHonestBlamed: every honest signer aborted, and none names another
// honest signer as the culprit.
func expectNoHonestBlamed(t *testing.T, q *quorum, honest []int, errOf func(int) error) {
	t.Helper()
	for _, j := range honest {
		var ae *AbortError
		if !errors.As(errOf(j), &ae) {
			t.Fatalf("signer %d: %v, want an abort", j, errOf(j))
		}
		for _, h := range honest {
			if ae.Culprit == q.ids[h].Public() {
				t.Errorf("signer %d blames honest signer %d: %v", j, h, ae)
			}
		}
	}
}
