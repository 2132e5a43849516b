package frost

import (
	crand "crypto/rand"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/dudect"
	"github.com/quorumd/quorumd/mpc/secp"
)

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

type ctNonceGenInput struct {
	share btcec.ModNScalar
	rand  [32]byte
}

// TestNonceGenConstantTime: NonceGen's secret-dependent part (masking rand
// with the secret share, hashing, reducing to k1, k2, computing k·G) with a
// fixed share and rand vs fresh random ones must be indistinguishable in time.
// The public arguments are the same in both classes.
func TestNonceGenConstantTime(t *testing.T) {
	pub := pointOf(new(btcec.ModNScalar).SetInt(7))
	args := NonceGenArgs{PubShare: pub[:], ThreshPKXOnly: pub[1:], Msg: make([]byte, 32), HasMsg: true, ExtraIn: []byte("session")}
	dudect.Test(t,
		func() *ctNonceGenInput {
			in := &ctNonceGenInput{}
			in.share.SetInt(1)
			return in
		},
		func() *ctNonceGenInput {
			in := &ctNonceGenInput{share: ctRandScalar(t)}
			if _, err := crand.Read(in.rand[:]); err != nil {
				t.Fatal(err)
			}
			return in
		},
		func(in *ctNonceGenInput) {
			a := args
			a.SecShare = &in.share
			if _, err := nonceGenInternal(&in.rand, &a); err != nil {
				panic(err)
			}
		})
}

type ctSignInput struct {
	k1, k2, d btcec.ModNScalar
}

func ctSignFixed(k1, k2, d *btcec.ModNScalar) func() *ctSignInput {
	return func() *ctSignInput { return &ctSignInput{k1: *k1, k2: *k2, d: *d} }
}

func ctSignRandom(t *testing.T) func() *ctSignInput {
	return func() *ctSignInput {
		return &ctSignInput{k1: ctRandScalar(t), k2: ctRandScalar(t), d: ctRandScalar(t)}
	}
}

// TestSignConstantTime: the secret part of Sign with a fixed secret share and
// nonce vs random ones must be indistinguishable in time. The public session
// values (b, e·λ, the negation flags) are the same in both classes. (The rest
// of Sign works on public data: session values, and verifying the public
// psig.)
//
//   - arith: s = ±k1 + b·(±k2) + e·λ·(±d) with the low-weight fixed class
//     k1 = k2 = d = 1, for each setting of the public negation flags;
//   - full: d'·G for the pubshare check, its encoding, and s, with a fixed
//     random-looking class. (secp's own timing tests cover k·G for the
//     low-weight scalars 0 and 1.)
func TestSignConstantTime(t *testing.T) {
	b, el := ctRandScalar(t), ctRandScalar(t)
	one := new(btcec.ModNScalar).SetInt(1)
	for _, flags := range []struct {
		name               string
		negNonce, negShare bool
	}{{"plain", false, false}, {"negated", true, true}, {"mixed", true, false}} {
		t.Run("arith/"+flags.name, func(t *testing.T) {
			dudect.Test(t, ctSignFixed(one, one, one), ctSignRandom(t), func(in *ctSignInput) {
				_ = partialSig(&in.k1, &in.k2, &in.d, flags.negNonce, flags.negShare, &b, &el)
			})
		})
	}
	k1, k2, d := ctRandScalar(t), ctRandScalar(t), ctRandScalar(t)
	var sink [33]byte
	t.Run("full", func(t *testing.T) {
		dudect.Test(t, ctSignFixed(&k1, &k2, &d), ctSignRandom(t), func(in *ctSignInput) {
			var p btcec.JacobianPoint
			secp.ScalarBaseMult(&in.d, &p)
			sink = cbytes(&p)
			_ = partialSig(&in.k1, &in.k2, &in.d, true, true, &b, &el)
		})
	})
	_ = sink
}

// TestSignConstantTimeHarnessDetectsLeak runs the classes of
// TestSignConstantTime/full with d'·G computed by btcec's variable-time
// ScalarBaseMultNonConst: the harness must flag it, showing that
// TestSignConstantTime can fail.
func TestSignConstantTimeHarnessDetectsLeak(t *testing.T) {
	b, el := ctRandScalar(t), ctRandScalar(t)
	k1, k2, d := ctRandScalar(t), ctRandScalar(t), ctRandScalar(t)
	dudect.ExpectLeak(t, ctSignFixed(&k1, &k2, &d), ctSignRandom(t),
		func(in *ctSignInput) {
			var p btcec.JacobianPoint
			btcec.ScalarBaseMultNonConst(&in.d, &p)
			_ = partialSig(&in.k1, &in.k2, &in.d, false, false, &b, &el)
		})
}
