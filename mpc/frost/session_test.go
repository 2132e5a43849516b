package frost

import (
	"errors"
	"strconv"
	"testing"
)

// TestSessionVectors runs the sign/verify vectors through Session: the
// aggregate nonce, every valid partial signature byte for byte, and the
// same verdicts and culprits as PartialSigVerify.
func TestSessionVectors(t *testing.T) {
	var v struct {
		TestGroups []struct {
			group
			ValidTests       []signCase `json:"valid_tests"`
			SignErrorTests   []signCase `json:"sign_error_tests"`
			VerifyFailTests  []signCase `json:"verify_fail_tests"`
			VerifyErrorTests []signCase `json:"verify_error_tests"`
		} `json:"test_groups"`
	}
	loadVectors(t, "sign_verify_vectors.json", &v)
	for _, g := range v.TestGroups {
		t.Run(g.TgID, func(t *testing.T) {
			for _, tc := range g.ValidTests {
				t.Run("valid/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					tweaks, err := g.tweaks(t, tc.TweakIdx, tc.IsXOnly)
					if err != nil {
						t.Fatal(err)
					}
					sn := secNonceFromVector(t, g.SecNonces[tc.SecNonceIdx])
					s, err := NewSignerSession(g.signers(t, tc.IDs, tc.PubShareIdx), g.pubnonces(t, tc.PubNonceIdx), tweaks, unhex(t, tc.Msg), sn)
					if err != nil {
						t.Fatal(err)
					}
					if s.AggNonce() != AggNonce(unhexLen(t, tc.AggNonce, AggNonceSize)) {
						t.Fatalf("aggnonce %x, want %s", s.AggNonce(), tc.AggNonce)
					}
					psig, err := s.Sign(sn, scalarRaw(t, g.SecShares[tc.SecShareIdx]), tc.MyID)
					if err != nil || psig != PartialSig(unhexLen(t, tc.Expected, PartialSigSize)) {
						t.Fatalf("psig %x, %v; want %s", psig, err, tc.Expected)
					}
					if !sn.Used() {
						t.Fatal("Session.Sign did not consume the nonce")
					}
					for j, id := range tc.IDs {
						err := s.Verify(psig, j)
						if (id == tc.MyID) != (err == nil) {
							t.Fatalf("Verify(own psig, %d) = %v (own id %d)", j, err, tc.MyID)
						}
						var ce *InvalidContributionError
						if err != nil && (!errors.As(err, &ce) || ce.Signer != j || ce.Contrib != ContribPsig) {
							t.Fatalf("Verify(%d) = %v, want the psig of signer %d blamed", j, err, j)
						}
					}
				})
			}
			for _, tc := range g.VerifyFailTests {
				t.Run("verify_fail/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					s, err := NewSession(g.signers(t, tc.IDs, tc.PubShareIdx), g.pubnonces(t, tc.PubNonceIdx), nil, unhex(t, tc.Msg))
					if err != nil {
						t.Fatal(err)
					}
					err = s.Verify(PartialSig(unhexLen(t, tc.PSig, PartialSigSize)), tc.SignerIndex)
					var ce *InvalidContributionError
					if !errors.Is(err, ErrPartialSigInvalid) || !errors.As(err, &ce) || ce.Signer != tc.SignerIndex {
						t.Fatalf("got %v, want psig of signer %d rejected", err, tc.SignerIndex)
					}
				})
			}
			for _, tc := range g.VerifyErrorTests {
				t.Run("verify_error/"+strconv.Itoa(tc.TcID), func(t *testing.T) {
					s, err := NewSession(g.signers(t, tc.IDs, tc.PubShareIdx), g.pubnonces(t, tc.PubNonceIdx), nil, unhex(t, tc.Msg))
					if err == nil {
						err = s.Verify(PartialSig(unhexLen(t, tc.PSig, PartialSigSize)), tc.SignerIndex)
					}
					checkError(t, err, tc.Error)
				})
			}
		})
	}
}

// TestSessionMatchesSpec signs random sessions both ways: Session and the
// spec functions on a SessionCtx give the same aggregate nonce, partial
// signatures and signature, and Session.Verify accepts exactly the
// partial signatures PartialSigVerify accepts.
func TestSessionMatchesSpec(t *testing.T) {
	rng := testRNG(t)
	trials := 30
	if testing.Short() {
		trials = 8
	}
	for trial := range trials {
		n := 1 + rng.Uint32N(7)
		th := 1 + rng.Uint32N(n)
		k := dealTestKey(t, rng, th, n)
		ids := randomSubset(rng, n, th+rng.Uint32N(n-th+1))
		sc := k.signers(ids)
		tweaks := randomTweaks(t, rng)
		msg := randomMsg(rng)
		type nonces struct{ a, b *SecNonce }
		sns := make([]nonces, len(ids))
		pns := make([]PubNonce, len(ids))
		for i := range ids {
			k1, k2 := randScalar(t, rng), randScalar(t, rng)
			sns[i] = nonces{newSecNonce(&k1, &k2), newSecNonce(&k1, &k2)}
			pns[i] = sns[i].a.pub
		}
		// Odd trials: the first signer's session, its own nonce not decoded.
		var own *SecNonce
		if trial%2 == 1 {
			own = sns[0].a
		}
		s, err := NewSignerSession(sc, pns, tweaks, msg, own)
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		agg, err := NonceAgg(pns)
		if err != nil || agg != s.AggNonce() {
			t.Fatalf("trial %d: aggnonce %x, NonceAgg %x %v", trial, s.AggNonce(), agg, err)
		}
		sess := &SessionCtx{Signers: *sc, AggNonce: agg, Tweaks: tweaks, Msg: msg}
		psigs := make([]PartialSig, len(ids))
		for i, id := range ids {
			ps, err := s.Sign(sns[i].a, &k.shares[id], id)
			if err != nil {
				t.Fatalf("trial %d: Session.Sign: %v", trial, err)
			}
			want, err := Sign(sns[i].b, &k.shares[id], id, sess)
			if err != nil || ps != want {
				t.Fatalf("trial %d: Session.Sign %x, Sign %x %v", trial, ps, want, err)
			}
			psigs[i] = ps
		}
		for i := range ids {
			if err := s.Verify(psigs[i], i); err != nil {
				t.Fatalf("trial %d: Verify(%d): %v", trial, i, err)
			}
			bad := psigs[i]
			bad[31] ^= 1
			err1 := s.Verify(bad, i)
			err2 := PartialSigVerify(bad, pns, sc, tweaks, msg, i)
			var ce *InvalidContributionError
			if !errors.Is(err1, ErrPartialSigInvalid) || !errors.As(err1, &ce) || ce.Signer != i || !errors.Is(err2, ErrPartialSigInvalid) {
				t.Fatalf("trial %d: tampered psig %d: Session %v, spec %v", trial, i, err1, err2)
			}
		}
		sig, err := s.Agg(psigs)
		if err != nil {
			t.Fatal(err)
		}
		want, err := PartialSigAgg(psigs, sess)
		if err != nil || sig != want {
			t.Fatalf("trial %d: Agg %x, PartialSigAgg %x %v", trial, sig, want, err)
		}
		tc, _ := tweakCtxFor(k.threshPK, tweaks)
		verifyFinal(t, tc.XOnlyPubKey(), msg, sig)
	}
}

// TestSessionOtherInputs: a Session's values belong to its own inputs. A
// partial signature from the same nonces is rejected under another
// message, another tweak or another signer set, and a signer whose nonce
// in the session is not its own gets Sign's answer for that session (the
// self-check then runs on its own nonce, not the session's copy).
func TestSessionOtherInputs(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 2, 4)
	ids := []uint32{0, 2}
	msg := []byte("message")
	mk := func() ([]*SecNonce, []PubNonce) {
		sns := make([]*SecNonce, 2)
		pns := make([]PubNonce, 2)
		for i := range sns {
			k1, k2 := randScalar(t, rng), randScalar(t, rng)
			sns[i] = newSecNonce(&k1, &k2)
			pns[i] = sns[i].pub
		}
		return sns, pns
	}
	sns, pns := mk()
	s, err := NewSession(k.signers(ids), pns, nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	psig, err := s.Sign(sns[0], &k.shares[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	others := map[string]func() (*Session, error){
		"message": func() (*Session, error) { return NewSession(k.signers(ids), pns, nil, []byte("other")) },
		"tweak": func() (*Session, error) {
			return NewSession(k.signers(ids), pns, []Tweak{{Value: randTweak(t, rng)}}, msg)
		},
		"signer set": func() (*Session, error) { return NewSession(k.signers([]uint32{0, 3}), pns, nil, msg) },
	}
	for name, f := range others {
		o, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := o.Verify(psig, 0); !errors.Is(err, ErrPartialSigInvalid) {
			t.Fatalf("%s: psig accepted in another session: %v", name, err)
		}
	}
	// Signer 1's nonce in the session is replaced by another one.
	sns2, pns2 := mk()
	s2, err := NewSession(k.signers(ids), []PubNonce{pns[0], pns2[1]}, nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	a, b := sns[1].k1, sns[1].k2
	twin := newSecNonce(&a, &b)
	got, err := s2.Sign(sns[1], &k.shares[2], 2)
	want, werr := Sign(twin, &k.shares[2], 2, s2.Ctx())
	if err != nil || werr != nil || got != want {
		t.Fatalf("Sign with a foreign nonce in the session: %x %v, spec %x %v", got, err, want, werr)
	}
	if err := s2.Verify(got, 1); !errors.Is(err, ErrPartialSigInvalid) {
		t.Fatalf("psig for a nonce not in the session accepted: %v", err)
	}
	_ = sns2
}

// TestTweakCtxCache: remembered tweak contexts are exactly what computing
// them afresh gives, for their own inputs only (another key, another tweak
// value or mode, another order, fewer tweaks: a wrong hit would differ from
// the fresh context for at least one of these), and a caller changing the
// context it got does not change what the next caller gets.
func TestTweakCtxCache(t *testing.T) {
	rng := testRNG(t)
	keys := [][33]byte{dealTestKey(t, rng, 2, 3).threshPK, dealTestKey(t, rng, 2, 3).threshPK}
	a, b := randTweak(t, rng), randTweak(t, rng)
	lists := [][]Tweak{
		nil,
		{{Value: a}},
		{{Value: a, XOnly: true}},
		{{Value: a}, {Value: b}},
		{{Value: b}, {Value: a}},
		{{Value: a}, {Value: b, XOnly: true}},
	}
	fresh := func(pk [33]byte, tws []Tweak) *TweakCtx {
		tc, err := NewTweakCtx(pk)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.ApplyTweaks(tws); err != nil {
			t.Fatal(err)
		}
		return tc
	}
	// Different inputs never share a cache key (some give equal contexts,
	// e.g. plain tweaks in either order, so this is checked on the keys).
	keysSeen := map[string]bool{}
	for _, pk := range keys {
		for _, tws := range lists {
			k := tweakCacheKey(&pk, tws)
			if keysSeen[k] {
				t.Fatalf("two inputs share the cache key %x", k)
			}
			keysSeen[k] = true
		}
	}
	for round := range 2 { // the second round is served from the cache
		for _, pk := range keys {
			for _, tws := range lists {
				got, err := TweakCtxFor(pk, tws)
				if err != nil {
					t.Fatal(err)
				}
				want := fresh(pk, tws)
				if got.PlainPubKey() != want.PlainPubKey() || !got.gacc.Equals(&want.gacc) || !got.tacc.Equals(&want.tacc) {
					t.Fatalf("round %d: cached tweak context differs from a fresh one", round)
				}
				// The caller's copy is its own.
				if err := got.ApplyTweak(b, false); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

// TestTweakCtxRemember: a context built step by step and remembered is
// what TweakCtxFor then hands out for exactly its own key and tweaks, and
// nothing else: another key with the same tweaks, or the same key with
// one tweak fewer, still gets its own fresh result.
func TestTweakCtxRemember(t *testing.T) {
	rng := testRNG(t)
	pkA, pkB := dealTestKey(t, rng, 2, 3).threshPK, dealTestKey(t, rng, 2, 3).threshPK
	tws := []Tweak{{Value: randTweak(t, rng)}, {Value: randTweak(t, rng)}, {Value: randTweak(t, rng), XOnly: true}}
	tc, err := NewTweakCtx(pkA)
	if err != nil {
		t.Fatal(err)
	}
	for _, tw := range tws {
		if err := tc.ApplyTweak(tw.Value, tw.XOnly); err != nil {
			t.Fatal(err)
		}
	}
	tc.Remember()
	want := tc.PlainPubKey()
	// The remembered copy is not the caller's: changing tc changes nothing.
	if err := tc.ApplyTweak(tws[0].Value, false); err != nil {
		t.Fatal(err)
	}
	got, err := TweakCtxFor(pkA, tws)
	if err != nil || got.PlainPubKey() != want {
		t.Fatalf("remembered context: %x %v, want %x", got.PlainPubKey(), err, want)
	}
	for name, c := range map[string]struct {
		pk  [33]byte
		tws []Tweak
	}{"other key": {pkB, tws}, "fewer tweaks": {pkA, tws[:2]}} {
		got, err := TweakCtxFor(c.pk, c.tws)
		if err != nil {
			t.Fatal(err)
		}
		fresh, _ := NewTweakCtx(c.pk)
		if err := fresh.ApplyTweaks(c.tws); err != nil {
			t.Fatal(err)
		}
		if got.PlainPubKey() != fresh.PlainPubKey() {
			t.Fatalf("%s: got another input's context", name)
		}
	}
	var zero TweakCtx
	zero.Remember() // not from a threshold key: ignored
}
