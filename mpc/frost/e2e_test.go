package frost

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
	"github.com/quorumd/quorumd/mpc/vss"
)

// testKey is trusted-dealer key material for tests: a random polynomial f of
// degree t-1, participant id holding f(id+1).
type testKey struct {
	n, t      uint32
	secret    btcec.ModNScalar
	shares    []btcec.ModNScalar
	pubshares []PubShare
	threshPK  [33]byte
}

func randScalar(t testing.TB, rng *mrand.Rand) btcec.ModNScalar {
	t.Helper()
	var b [32]byte
	for {
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		var s btcec.ModNScalar
		if !s.SetByteSlice(b[:]) && !s.IsZero() {
			return s
		}
	}
}

func pointOf(k *btcec.ModNScalar) [33]byte {
	var p btcec.JacobianPoint
	secp.ScalarBaseMult(k, &p)
	return cbytes(&p)
}

// dealTestKey deals a random key with the real Feldman VSS dealer (mpc/vss,
// coefficients drawn from rng so a failing seed reproduces), then checks the
// dealing the way a recipient would.
func dealTestKey(t testing.TB, rng *mrand.Rand, threshold, n uint32) *testKey {
	t.Helper()
	k := &testKey{n: n, t: threshold, secret: randScalar(t, rng)}
	d, err := vss.Deal(&k.secret, int(threshold), int(n), rngReader{rng})
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := vss.PublicShares(d.Commitments, int(n))
	if err != nil {
		t.Fatal(err)
	}
	for id := range n {
		if err := vss.VerifyShare(d.Commitments, int(id), &d.Shares[id]); err != nil {
			t.Fatal(err)
		}
		k.shares = append(k.shares, d.Shares[id])
		k.pubshares = append(k.pubshares, PubShare(pubs[id].SerializeCompressed()))
	}
	k.threshPK = pointOf(&k.secret)
	if [33]byte(d.Commitments[0].SerializeCompressed()) != k.threshPK {
		t.Fatal("C_0 is not x·G")
	}
	return k
}

// rngReader feeds a seeded math/rand generator to vss.Deal.
type rngReader struct{ r *mrand.Rand }

func (r rngReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r.r.Uint32())
	}
	return len(p), nil
}

func (k *testKey) signers(ids []uint32) *SignersCtx {
	ps := make([]PubShare, len(ids))
	for i, id := range ids {
		ps[i] = k.pubshares[id]
	}
	return &SignersCtx{N: k.n, T: k.t, IDs: ids, PubShares: ps, ThreshPK: k.threshPK}
}

// signAll runs a full session for the signer set ids and returns the final
// signature, checking every partial signature on the way.
func signAll(t testing.TB, k *testKey, ids []uint32, tweaks []Tweak, msg []byte) Signature {
	t.Helper()
	sc := k.signers(ids)
	tc, err := tweakCtxFor(k.threshPK, tweaks)
	if err != nil {
		t.Fatal(err)
	}
	outKey := tc.XOnlyPubKey()
	secnonces := make([]*SecNonce, len(ids))
	pubnonces := make([]PubNonce, len(ids))
	for i, id := range ids {
		sn, pn, err := NonceGen(nil, &NonceGenArgs{
			SecShare: &k.shares[id], PubShare: k.pubshares[id][:], ThreshPKXOnly: outKey[:],
			Msg: msg, HasMsg: true, ExtraIn: []byte("session"),
		})
		if err != nil {
			t.Fatal(err)
		}
		secnonces[i], pubnonces[i] = sn, pn
	}
	agg, err := NonceAgg(pubnonces)
	if err != nil {
		t.Fatal(err)
	}
	sess := &SessionCtx{Signers: *sc, AggNonce: agg, Tweaks: tweaks, Msg: msg}
	psigs := make([]PartialSig, len(ids))
	for i, id := range ids {
		if psigs[i], err = Sign(secnonces[i], &k.shares[id], id, sess); err != nil {
			t.Fatalf("Sign(id %d): %v", id, err)
		}
	}
	for i := range ids {
		if err := PartialSigVerify(psigs[i], pubnonces, sc, tweaks, msg, i); err != nil {
			t.Fatalf("PartialSigVerify(%d): %v", i, err)
		}
	}
	sig, err := PartialSigAgg(psigs, sess)
	if err != nil {
		t.Fatal(err)
	}
	verifyFinal(t, outKey, msg, sig)
	return sig
}

func randomSubset(rng *mrand.Rand, n, size uint32) []uint32 {
	perm := rng.Perm(int(n))[:size]
	ids := make([]uint32, size)
	for i, p := range perm {
		ids[i] = uint32(p)
	}
	return ids // deliberately unsorted: order must not matter
}

func randomMsg(rng *mrand.Rand) []byte {
	lengths := []int{0, 1, 32, 32, 38, 100, rng.IntN(300)}
	msg := make([]byte, lengths[rng.IntN(len(lengths))])
	for i := range msg {
		msg[i] = byte(rng.Uint32())
	}
	return msg
}

// randomTweaks returns none, BIP32-style plain tweaks followed by a BIP341
// x-only tweak, or a random mix.
func randomTweaks(t testing.TB, rng *mrand.Rand) []Tweak {
	var tweaks []Tweak
	switch rng.IntN(3) {
	case 1:
		for range rng.IntN(4) {
			tweaks = append(tweaks, Tweak{Value: randTweak(t, rng)})
		}
		tweaks = append(tweaks, Tweak{Value: randTweak(t, rng), XOnly: true})
	case 2:
		for range 1 + rng.IntN(4) {
			tweaks = append(tweaks, Tweak{Value: randTweak(t, rng), XOnly: rng.IntN(2) == 0})
		}
	}
	return tweaks
}

func randTweak(t testing.TB, rng *mrand.Rand) [32]byte {
	s := randScalar(t, rng)
	return s.Bytes()
}

func testRNG(t testing.TB) *mrand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("rng seed %d", seed)
	return mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// TestEndToEndRandom signs with random t-of-n keys, random signer subsets,
// messages and tweaks, and verifies every final signature with btcec's
// schnorr and with mpc/bip340.
func TestEndToEndRandom(t *testing.T) {
	rng := testRNG(t)
	// The last trial is one large quorum: 15-of-20.
	trials, maxN := 40, uint32(10)
	if testing.Short() {
		trials = 10
	}
	for trial := range trials {
		n := 1 + rng.Uint32N(maxN)
		th := 1 + rng.Uint32N(min(n, 15))
		if trial == trials-1 && !testing.Short() {
			n, th = 20, 15
		}
		u := th + rng.Uint32N(n-th+1)
		k := dealTestKey(t, rng, th, n)
		ids := randomSubset(rng, n, u)
		tweaks := randomTweaks(t, rng)
		msg := randomMsg(rng)
		t.Run(fmt.Sprintf("%d/%dof%d/u%d/tw%d/m%d", trial, th, n, u, len(tweaks), len(msg)), func(t *testing.T) {
			signAll(t, k, ids, tweaks, msg)
		})
	}
}

// TestDealerKeygenVectors checks the trusted-dealer key material behind every
// vector group: pubshares and thresh_pk match the secrets, every signer set
// of size >= t validates and interpolates to the secret, and signs.
func TestDealerKeygenVectors(t *testing.T) {
	var v struct {
		Comment string `json:"comment"`
		Groups  []struct {
			TgID            string   `json:"tg_id"`
			T               uint32   `json:"t"`
			N               uint32   `json:"n"`
			ThreshSK        string   `json:"thresh_sk"`
			ThreshPK        string   `json:"thresh_pk"`
			ThreshPKHasEven bool     `json:"thresh_pk_has_even_y"`
			IDs             []uint32 `json:"ids"`
			SecShares       []string `json:"secshares"`
			PubShares       []string `json:"pubshares"`
		} `json:"groups"`
	}
	loadVectors(t, "dealer_keygen.json", &v)
	if len(v.Groups) == 0 {
		t.Fatal("no groups")
	}
	for _, g := range v.Groups {
		t.Run(g.TgID, func(t *testing.T) {
			k := &testKey{n: g.N, t: g.T, secret: *scalarRaw(t, g.ThreshSK), threshPK: [33]byte(unhexLen(t, g.ThreshPK, 33))}
			if pointOf(&k.secret) != k.threshPK {
				t.Fatal("thresh_sk·G != thresh_pk")
			}
			if (k.threshPK[0] == 2) != g.ThreshPKHasEven {
				t.Fatal("thresh_pk_has_even_y disagrees with thresh_pk")
			}
			for i, id := range g.IDs {
				if id != uint32(i) {
					t.Fatalf("ids not 0..n-1: %v", g.IDs)
				}
				k.shares = append(k.shares, *scalarRaw(t, g.SecShares[i]))
				k.pubshares = append(k.pubshares, PubShare(unhexLen(t, g.PubShares[i], 33)))
				if pointOf(&k.shares[i]) != k.pubshares[i] {
					t.Fatalf("secshare %d · G != pubshare", i)
				}
			}
			msg := unhex(t, "F95466D086770E689964664219266FE5ED215C92AE20BAB5C9D79ADDDDF3C0CF")
			for mask := 1; mask < 1<<g.N; mask++ {
				var ids []uint32
				for id := range g.N {
					if mask&(1<<id) != 0 {
						ids = append(ids, id)
					}
				}
				err := ValidateSignersCtx(k.signers(ids))
				if uint32(len(ids)) < g.T {
					if !errors.Is(err, ErrSignerCount) {
						t.Fatalf("set %v below threshold: %v", ids, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("set %v: %v", ids, err)
				}
				var sum btcec.ModNScalar
				for _, id := range ids {
					lambda, err := DeriveInterpolatingValue(ids, id)
					if err != nil {
						t.Fatal(err)
					}
					sum.Add(lambda.Mul(&k.shares[id]))
				}
				if !sum.Equals(&k.secret) {
					t.Fatalf("set %v does not interpolate to thresh_sk", ids)
				}
				signAll(t, k, ids, nil, msg)
			}
		})
	}
}

func TestSecNonceSingleUse(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 2, 3)
	ids := []uint32{0, 2}
	msg := []byte("single use")
	newSession := func(t *testing.T) (*SecNonce, *SessionCtx) {
		sn0, pn0, err := NonceGen(nil, &NonceGenArgs{SecShare: &k.shares[0]})
		if err != nil {
			t.Fatal(err)
		}
		_, pn2, err := NonceGen(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		agg, err := NonceAgg([]PubNonce{pn0, pn2})
		if err != nil {
			t.Fatal(err)
		}
		return sn0, &SessionCtx{Signers: *k.signers(ids), AggNonce: agg, Msg: msg}
	}
	t.Run("zeroed after Sign, reuse refused", func(t *testing.T) {
		sn, sess := newSession(t)
		if sn.Used() || sn.k1.IsZero() || sn.k2.IsZero() {
			t.Fatal("fresh nonce looks used")
		}
		if _, err := Sign(sn, &k.shares[0], 0, sess); err != nil {
			t.Fatal(err)
		}
		if !sn.Used() || !sn.k1.IsZero() || !sn.k2.IsZero() {
			t.Fatal("nonce not zeroed after Sign")
		}
		_, err := Sign(sn, &k.shares[0], 0, sess)
		if !errors.Is(err, ErrNonceReused) {
			t.Fatalf("second Sign: %v, want ErrNonceReused", err)
		}
	})
	t.Run("consumed by a failing Sign", func(t *testing.T) {
		sn, sess := newSession(t)
		bad := *sess
		bad.AggNonce[0] = 4 // invalid tag: the coordinator is blamed
		_, err := Sign(sn, &k.shares[0], 0, &bad)
		var ce *InvalidContributionError
		if !errors.As(err, &ce) || ce.Contrib != ContribAggNonce || ce.Signer != CoordinatorCulprit {
			t.Fatalf("Sign with bad aggnonce: %v", err)
		}
		if _, err := Sign(sn, &k.shares[0], 0, sess); !errors.Is(err, ErrNonceReused) {
			t.Fatalf("retry after failure: %v, want ErrNonceReused", err)
		}
	})
	t.Run("Destroy", func(t *testing.T) {
		sn, sess := newSession(t)
		pn := sn.PubNonce()
		sn.Destroy()
		if !sn.k1.IsZero() || !sn.k2.IsZero() || sn.PubNonce() != pn {
			t.Fatal("Destroy did not zero the secret part")
		}
		if _, err := Sign(sn, &k.shares[0], 0, sess); !errors.Is(err, ErrNonceReused) {
			t.Fatalf("Sign after Destroy: %v, want ErrNonceReused", err)
		}
	})
	t.Run("concurrent Sign uses it once", func(t *testing.T) {
		sn, sess := newSession(t)
		errs := make(chan error, 8)
		for range 8 {
			go func() { _, err := Sign(sn, &k.shares[0], 0, sess); errs <- err }()
		}
		ok := 0
		for range 8 {
			err := <-errs
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrNonceReused):
				t.Errorf("unexpected error %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d successful Signs with one nonce", ok)
		}
	})
}

// TestSignSelfVerify shows that Sign withholds a partial signature that does
// not verify (here: a nonce whose cached public nonce is wrong).
func TestSignSelfVerify(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 1, 1)
	k1, k2 := randScalar(t, rng), randScalar(t, rng)
	sn := newSecNonce(&k1, &k2)
	sess := &SessionCtx{Signers: *k.signers([]uint32{0}), AggNonce: AggNonce(sn.pub)}
	sn.r[1] = sn.r[0] // the public nonce held with k2 is wrong
	if _, err := Sign(sn, &k.shares[0], 0, sess); !errors.Is(err, ErrSelfVerify) {
		t.Fatalf("got %v, want ErrSelfVerify", err)
	}
}

func TestNonceGenArgs(t *testing.T) {
	rnd := bytes.Repeat([]byte{7}, 32)
	share := scalarFromUint64(12345)
	base := NonceGenArgs{SecShare: &share, PubShare: make([]byte, 33), ThreshPKXOnly: make([]byte, 32), Msg: []byte("m"), HasMsg: true, ExtraIn: []byte("x")}
	gen := func(a NonceGenArgs) (PubNonce, error) {
		_, pn, err := NonceGen(bytes.NewReader(rnd), &a)
		return pn, err
	}
	ref, err := gen(base)
	if err != nil {
		t.Fatal(err)
	}
	// Every optional argument changes the nonce (defense in depth).
	mods := map[string]func(*NonceGenArgs){
		"no secshare":    func(a *NonceGenArgs) { a.SecShare = nil },
		"other share":    func(a *NonceGenArgs) { s := scalarFromUint64(12346); a.SecShare = &s },
		"no pubshare":    func(a *NonceGenArgs) { a.PubShare = nil },
		"no thresh_pk":   func(a *NonceGenArgs) { a.ThreshPKXOnly = nil },
		"no msg":         func(a *NonceGenArgs) { a.HasMsg = false },
		"empty msg":      func(a *NonceGenArgs) { a.Msg = nil },
		"other extra":    func(a *NonceGenArgs) { a.ExtraIn = []byte("y") },
		"no extra":       func(a *NonceGenArgs) { a.ExtraIn = nil },
		"other pubshare": func(a *NonceGenArgs) { a.PubShare = bytes.Repeat([]byte{1}, 33) },
	}
	for name, mod := range mods {
		a := base
		mod(&a)
		pn, err := gen(a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if pn == ref {
			t.Errorf("%s: same nonce", name)
		}
	}
	if pn, _ := gen(base); pn != ref {
		t.Error("NonceGen not deterministic in its randomness")
	}
	bad := map[string]func(*NonceGenArgs){
		"pubshare 32": func(a *NonceGenArgs) { a.PubShare = make([]byte, 32) },
		"xonly 33":    func(a *NonceGenArgs) { a.ThreshPKXOnly = make([]byte, 33) },
	}
	for name, mod := range bad {
		a := base
		mod(&a)
		if _, err := gen(a); !errors.Is(err, ErrOptionalArgLength) || !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v, want ErrOptionalArgLength", name, err)
		}
	}
	if _, _, err := NonceGen(bytes.NewReader(rnd[:31]), nil); !errors.Is(err, ErrRandom) {
		t.Errorf("short randomness: %v, want ErrRandom", err)
	}
	// Fresh randomness gives fresh nonces.
	_, a, _ := NonceGen(crand.Reader, nil)
	_, b, _ := NonceGen(nil, nil)
	if a == b {
		t.Error("two random nonces are equal")
	}
}

func TestPartialSigVerifyInputs(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 2, 3)
	sc := k.signers([]uint32{0, 1})
	_, pn, err := NonceGen(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		pns    []PubNonce
		i      int
		reason error
	}{
		{"too few pubnonces", []PubNonce{pn}, 0, ErrPubNoncesLength},
		{"index -1", []PubNonce{pn, pn}, -1, ErrSignerIndex},
		{"index u", []PubNonce{pn, pn}, 2, ErrSignerIndex},
	}
	for _, c := range cases {
		err := PartialSigVerify(PartialSig{}, c.pns, sc, nil, nil, c.i)
		if !errors.Is(err, c.reason) || !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v, want %v", c.name, err, c.reason)
		}
	}
}

func TestDeriveInterpolatingValue(t *testing.T) {
	if _, err := DeriveInterpolatingValue([]uint32{0, 1}, 2); !errors.Is(err, ErrIDNotInSet) {
		t.Errorf("id not in set: %v", err)
	}
	if _, err := DeriveInterpolatingValue([]uint32{0, 1, 1}, 0); !errors.Is(err, ErrDuplicateIDs) {
		t.Errorf("duplicates: %v", err)
	}
	// Σ λ_i·f(id_i+1) = f(0) for a random line, including ids at the top of
	// the uint32 range where id+1 no longer fits 32 bits.
	rng := testRNG(t)
	c0, c1 := randScalar(t, rng), randScalar(t, rng)
	f := func(id uint32) btcec.ModNScalar {
		x := scalarFromUint64(uint64(id) + 1)
		return *x.Mul(&c1).Add(&c0)
	}
	for _, ids := range [][]uint32{{0, 1}, {7, 3}, {1<<32 - 1, 1<<32 - 2}, {0, 1<<32 - 1, 5}} {
		var sum btcec.ModNScalar
		for _, id := range ids {
			lambda, err := DeriveInterpolatingValue(ids, id)
			if err != nil {
				t.Fatal(err)
			}
			y := f(id)
			sum.Add(lambda.Mul(&y))
		}
		if !sum.Equals(&c0) {
			t.Errorf("ids %v: interpolation at 0 is wrong", ids)
		}
	}
}

func TestDeriveThreshPubkey(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 3, 5)
	ids := []uint32{4, 0, 2}
	pubs := make([]*btcec.PublicKey, len(ids))
	for i, id := range ids {
		p, err := btcec.ParsePubKey(k.pubshares[id][:])
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = p
	}
	got, err := DeriveThreshPubkey(ids, pubs)
	if err != nil || got != k.threshPK {
		t.Fatalf("DeriveThreshPubkey = %x, %v; want %x", got, err, k.threshPK)
	}
	if _, err := DeriveThreshPubkey(ids[:2], pubs); !errors.Is(err, ErrPubSharesLength) {
		t.Fatalf("length mismatch: %v", err)
	}
}

func TestValidateSignersCtxErrors(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 2, 3)
	good := k.signers([]uint32{0, 1})
	cases := []struct {
		name   string
		mod    func(*SignersCtx)
		reason error
		index  int
	}{
		{"t = 0", func(c *SignersCtx) { c.T = 0 }, ErrThresholdRange, -1},
		{"t > n", func(c *SignersCtx) { c.T = 4 }, ErrThresholdRange, -1},
		{"u > n", func(c *SignersCtx) { c.N = 1; c.T = 1 }, ErrSignerCount, -1},
		{"pubshares short", func(c *SignersCtx) { c.PubShares = c.PubShares[:1] }, ErrPubSharesLength, -1},
		{"id out of range", func(c *SignersCtx) { c.IDs = []uint32{0, 3} }, ErrIDOutOfRange, 1},
		{"bad pubshare", func(c *SignersCtx) { c.PubShares = []PubShare{c.PubShares[0], {}} }, ErrInvalidPubShare, 1},
		{"duplicates", func(c *SignersCtx) { c.IDs = []uint32{1, 1} }, ErrDuplicateIDs, -1},
		{"wrong thresh_pk", func(c *SignersCtx) { c.ThreshPK = c.PubShares[0] }, ErrKeyMaterial, -1},
		{"cancelling pubshares", func(c *SignersCtx) {
			// λ_0·P_0 + λ_1·P_1 = 0 with P_1 = -(λ_0/λ_1)·P_0 (here λ_0 = 2, λ_1 = -1).
			two := scalarFromUint64(2)
			p1 := PubShare(pointOf(two.Mul(&k.shares[0])))
			c.PubShares = []PubShare{c.PubShares[0], p1}
		}, ErrThreshPKInfinity, -1},
	}
	for _, c := range cases {
		sc := *good
		sc.IDs = slices.Clone(good.IDs)
		sc.PubShares = slices.Clone(good.PubShares)
		c.mod(&sc)
		err := ValidateSignersCtx(&sc)
		var ie *InputError
		if !errors.As(err, &ie) || ie.Reason != c.reason || ie.Index != c.index {
			t.Errorf("%s: %v, want %v at %d", c.name, err, c.reason, c.index)
		}
	}
	if err := ValidateSignersCtx(good); err != nil {
		t.Fatal(err)
	}
}

func TestTweakCtx(t *testing.T) {
	rng := testRNG(t)
	k := dealTestKey(t, rng, 1, 1)
	tc, err := NewTweakCtx(k.threshPK)
	if err != nil {
		t.Fatal(err)
	}
	if tc.PlainPubKey() != k.threshPK || [32]byte(k.threshPK[1:]) != tc.XOnlyPubKey() {
		t.Fatal("untweaked context does not return thresh_pk")
	}
	// A plain tweak t gives Q + t·G; an x-only tweak gives with_even_y(Q) + t·G.
	tw := randScalar(t, rng)
	if err := tc.ApplyTweak(tw.Bytes(), false); err != nil {
		t.Fatal(err)
	}
	var want btcec.ModNScalar
	want.Add2(&k.secret, &tw)
	if tc.PlainPubKey() != pointOf(&want) {
		t.Fatal("plain tweak: wrong key")
	}
	if tc.PlainPubKey()[0] == 3 { // make the next x-only tweak negate
		want.Negate()
	}
	tw2 := randScalar(t, rng)
	if err := tc.ApplyTweak(tw2.Bytes(), true); err != nil {
		t.Fatal(err)
	}
	want.Add(&tw2)
	if tc.PlainPubKey() != pointOf(&want) {
		t.Fatal("x-only tweak: wrong key")
	}
	before := *tc
	var n [32]byte
	copy(n[:], unhex(t, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"))
	if err := tc.ApplyTweak(n, false); !errors.Is(err, ErrTweakOutOfRange) {
		t.Fatalf("tweak n: %v", err)
	}
	want.Negate() // tweak -x drives Q to infinity
	if err := tc.ApplyTweak(want.Bytes(), false); !errors.Is(err, ErrTweakInfinity) {
		t.Fatalf("infinity tweak: %v", err)
	}
	if tc.q != before.q || tc.gacc != before.gacc || tc.tacc != before.tacc || len(tc.applied) != len(before.applied) {
		t.Fatal("failed ApplyTweak modified the context")
	}
	if _, err := NewTweakCtx([33]byte{2}); !errors.Is(err, ErrInvalidThreshPK) {
		t.Fatalf("NewTweakCtx(invalid): %v", err)
	}
	if _, err := NewTweaks([][]byte{make([]byte, 32)}, nil); !errors.Is(err, ErrTweakModesLength) {
		t.Fatalf("NewTweaks mismatch: %v", err)
	}
}

func TestParsers(t *testing.T) {
	g := "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
	gOdd := "0379BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
	notOnCurve := "020000000000000000000000000000000000000000000000000000000000000007"
	xTooBig := "02FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30"
	zero33 := hex.EncodeToString(make([]byte, 33))
	n := "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141"
	nMinus1 := "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140"
	type parser func([]byte) error
	pubshare := func(b []byte) error { _, err := ParsePubShare(b); return err }
	pubnonce := func(b []byte) error { _, err := ParsePubNonce(b); return err }
	aggnonce := func(b []byte) error { _, err := ParseAggNonce(b); return err }
	psig := func(b []byte) error { _, err := ParsePartialSig(b); return err }
	secshare := func(b []byte) error { _, err := ParseSecShare(b); return err }
	cases := []struct {
		name string
		p    parser
		in   string
		ok   bool
	}{
		{"pubshare G", pubshare, g, true},
		{"pubshare -G", pubshare, gOdd, true},
		{"pubshare off curve", pubshare, notOnCurve, false},
		{"pubshare x >= p", pubshare, xTooBig, false},
		{"pubshare infinity", pubshare, zero33, false},
		{"pubshare uncompressed tag", pubshare, "04" + g[2:], false},
		{"pubshare short", pubshare, g[:64], false},
		{"pubnonce ok", pubnonce, g + gOdd, true},
		{"pubnonce infinity half", pubnonce, g + zero33, false},
		{"pubnonce bad second", pubnonce, g + notOnCurve, false},
		{"pubnonce long", pubnonce, g + g + "00", false},
		{"aggnonce ok", aggnonce, g + gOdd, true},
		{"aggnonce infinity", aggnonce, zero33 + zero33, true},
		{"aggnonce bad first", aggnonce, xTooBig + g, false},
		{"aggnonce short", aggnonce, g, false},
		{"psig n-1", psig, nMinus1, true},
		{"psig zero", psig, hex.EncodeToString(make([]byte, 32)), true},
		{"psig n", psig, n, false},
		{"psig short", psig, nMinus1[:62], false},
		{"secshare n-1", secshare, nMinus1, true},
		{"secshare zero", secshare, hex.EncodeToString(make([]byte, 32)), false},
		{"secshare n", secshare, n, false},
		{"secshare long", secshare, nMinus1 + "00", false},
	}
	for _, c := range cases {
		err := c.p(unhex(t, c.in))
		if (err == nil) != c.ok {
			t.Errorf("%s: err = %v, want ok = %v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidInput) {
			t.Errorf("%s: %v does not match ErrInvalidInput", c.name, err)
		}
	}
}

func TestErrorStrings(t *testing.T) {
	ce := &InvalidContributionError{Signer: 2, Contrib: ContribPsig, Err: ErrPartialSigInvalid}
	if s := ce.Error(); s != "frost: invalid psig from signer at index 2: frost: partial signature does not verify" {
		t.Errorf("got %q", s)
	}
	if s := (&InvalidContributionError{Signer: CoordinatorCulprit, Contrib: ContribAggNonce}).Error(); s != "frost: invalid aggnonce from coordinator" {
		t.Errorf("got %q", s)
	}
	if !errors.Is(ce, ErrPartialSigInvalid) || errors.Is(ce, ErrInvalidInput) {
		t.Error("InvalidContributionError matches the wrong sentinels")
	}
	ie := inputErrAt(ErrInvalidPubShare, 1)
	if ie.Error() != "frost: invalid pubshare (index 1)" || errors.Is(ie, ErrInvalidContribution) {
		t.Errorf("InputError: %q", ie.Error())
	}
}
