package chilldkg

import (
	crand "crypto/rand"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/dudect"
)

// Timing tests (dudect, fixed vs random class) for every secret path this
// package adds: share generation, the pop signature, encryption pads and
// share encryption, and decryption and checking of the aggregated share.
// Public arguments are the same in both classes. The Makefile's test-timing
// target runs them (QUORUMD_TIMING=ci, or long for make bench).

func ctRandScalar(t *testing.T) btcec.ModNScalar {
	for {
		var b [32]byte
		if _, err := crand.Read(b[:]); err != nil {
			t.Fatal(err)
		}
		var s btcec.ModNScalar
		if !s.SetByteSlice(b[:]) && !s.IsZero() {
			return s
		}
	}
}

func ctRand32(t *testing.T) [32]byte {
	var b [32]byte
	if _, err := crand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return b
}

const ctT, ctN = 3, 4

// TestShareGenerationConstantTime: deriving the coefficients from the
// session seed, evaluating the shares f(1..n) and committing a_k·G, with a
// fixed seed vs random ones ("derive"), and the evaluation and commitment
// alone with the low-weight polynomial 1 + x + x² vs random coefficients
// ("arith").
func TestShareGenerationConstantTime(t *testing.T) {
	fixedSeed := ctRand32(t)
	t.Run("derive", func(t *testing.T) {
		dudect.Test(t,
			func() *[32]byte { s := fixedSeed; return &s },
			func() *[32]byte { s := ctRand32(t); return &s },
			func(seed *[32]byte) {
				f, err := vssGenerate(seed, ctT)
				if err != nil {
					panic(err)
				}
				sh := f.shares(ctN)
				_ = f.commit()
				zeroScalars(sh)
				f.zero()
			})
	})
	t.Run("arith", func(t *testing.T) {
		dudect.Test(t,
			func() polynomial {
				f := make(polynomial, ctT)
				for k := range f {
					f[k].SetInt(1)
				}
				return f
			},
			func() polynomial {
				f := make(polynomial, ctT)
				for k := range f {
					f[k] = ctRandScalar(t)
				}
				return f
			},
			func(f polynomial) {
				sh := f.shares(ctN)
				_ = f.commit()
				zeroScalars(sh)
			})
	})
}

type ctPopInput struct {
	secret btcec.ModNScalar
	aux    [32]byte
}

// TestPopSignConstantTime: the proof of possession with a fixed secret
// (random-looking, and 1) vs random secrets and aux randomness.
func TestPopSignConstantTime(t *testing.T) {
	fixed := ctRandScalar(t)
	random := func() *ctPopInput { return &ctPopInput{secret: ctRandScalar(t), aux: ctRand32(t)} }
	for name, s := range map[string]btcec.ModNScalar{"fixed": fixed, "one": *new(btcec.ModNScalar).SetInt(1)} {
		t.Run(name, func(t *testing.T) {
			dudect.Test(t, func() *ctPopInput { return &ctPopInput{secret: s} }, random,
				func(in *ctPopInput) {
					if _, err := popSign(&in.secret, 1, &in.aux); err != nil {
						panic(err)
					}
				})
		})
	}
}

// ctSession is public session data shared by both classes.
type ctSession struct {
	enckeys   [][]byte
	ctx       []byte
	pubnonce  []byte
	pubnonces [][]byte
	pubshare  point
}

func newCTSession(t *testing.T) *ctSession {
	keys, params := newHostKeys(t, ctN)
	params.T = ctT
	_ = keys
	s := &ctSession{enckeys: params.HostPubkeys, ctx: encContext(ctT, params.HostPubkeys)}
	for range ctN {
		k := ctRandScalar(t)
		pk := pubkeyOf(&k)
		s.pubnonces = append(s.pubnonces, pk[:])
	}
	s.pubnonce = s.pubnonces[0]
	k := ctRandScalar(t)
	s.pubshare = scalarBaseMultPublic(&k)
	return s
}

type ctEncInput struct {
	secnonce btcec.ModNScalar
	deckey   [32]byte
	shares   []btcec.ModNScalar
}

// TestEncryptSharesConstantTime: the pads (ECDH of the secret nonce with
// each recipient's host key, the self pad from the host secret key) and the
// encrypted shares, fixed (random-looking, and nonce = shares = 1) vs random
// secret nonce, host key and shares.
func TestEncryptSharesConstantTime(t *testing.T) {
	s := newCTSession(t)
	random := func() *ctEncInput {
		in := &ctEncInput{secnonce: ctRandScalar(t), shares: make([]btcec.ModNScalar, ctN)}
		k := ctRandScalar(t)
		in.deckey = k.Bytes()
		for j := range in.shares {
			in.shares[j] = ctRandScalar(t)
		}
		return in
	}
	fixedIn := random()
	one := func() *ctEncInput {
		in := &ctEncInput{shares: make([]btcec.ModNScalar, ctN)}
		in.secnonce.SetInt(1)
		in.deckey[31] = 1
		for j := range in.shares {
			in.shares[j].SetInt(1)
		}
		return in
	}
	fixed := func() *ctEncInput {
		in := &ctEncInput{secnonce: fixedIn.secnonce, deckey: fixedIn.deckey, shares: make([]btcec.ModNScalar, ctN)}
		copy(in.shares, fixedIn.shares)
		return in
	}
	op := func(in *ctEncInput) {
		enc, err := encryptShares(&in.secnonce, s.pubnonce, &in.deckey, s.enckeys, s.ctx, 0, in.shares)
		if err != nil {
			panic(err)
		}
		zeroScalars(enc)
	}
	t.Run("fixed", func(t *testing.T) { dudect.Test(t, fixed, random, op) })
	t.Run("one", func(t *testing.T) { dudect.Test(t, one, random, op) })
}

type ctDecInput struct {
	deckey      btcec.ModNScalar
	deckeyBytes [32]byte
	enc         btcec.ModNScalar
}

// TestDecryptShareConstantTime: the decryption pads by ECDH of the host
// secret key with every sender's nonce, the aggregated share, and its check
// against the public share (the check fails in both classes, as the share is
// random), fixed vs random host key and ciphertext.
func TestDecryptShareConstantTime(t *testing.T) {
	s := newCTSession(t)
	mk := func(k, enc btcec.ModNScalar) *ctDecInput {
		return &ctDecInput{deckey: k, deckeyBytes: k.Bytes(), enc: enc}
	}
	fk, fe := ctRandScalar(t), ctRandScalar(t)
	var tweak btcec.ModNScalar
	tweak.SetInt(5)
	dudect.Test(t,
		func() *ctDecInput { return mk(fk, fe) },
		func() *ctDecInput { return mk(ctRandScalar(t), ctRandScalar(t)) },
		func(in *ctDecInput) {
			pads, err := decryptPads(&in.deckey, &in.deckeyBytes, s.enckeys[0], s.pubnonces, s.ctx, 0)
			if err != nil {
				panic(err)
			}
			var sec btcec.ModNScalar
			sum := sumScalars(pads)
			sec.NegateVal(&sum).Add(&in.enc).Add(&tweak)
			if verifySecshare(&sec, &s.pubshare) {
				panic("random share verified")
			}
			zeroScalars(pads)
			sec.Zero()
		})
}

// TestPopSignConstantTimeHarnessDetectsLeak runs TestPopSignConstantTime's
// "one" classes through btcec's variable-time k·G: the harness must flag it,
// showing those tests can fail.
func TestPopSignConstantTimeHarnessDetectsLeak(t *testing.T) {
	dudect.ExpectLeak(t,
		func() *ctPopInput { in := &ctPopInput{}; in.secret.SetInt(1); return in },
		func() *ctPopInput { return &ctPopInput{secret: ctRandScalar(t), aux: ctRand32(t)} },
		func(in *ctPopInput) {
			var p btcec.JacobianPoint
			btcec.ScalarBaseMultNonConst(&in.secret, &p)
		})
}
