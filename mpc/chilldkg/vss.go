package chilldkg

import (
	"crypto/subtle"
	"errors"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/bip340"
	"github.com/quorumd/quorumd/mpc/secp"
)

// The participant's own Feldman VSS dealing (SimplPedPop step 1): secret
// coefficients derived from the session seed, their commitments and the
// shares f(j+1). Constant time in the seed and the coefficients: SHA-256,
// ModNScalar arithmetic and mpc/secp only.

var errDerivation = errors.New("chilldkg: derived scalar out of range (probability ~2^-128)")

// polynomial holds f's coefficients a_0..a_{t-1}; a_0 is the secret.
type polynomial []btcec.ModNScalar

func (f polynomial) zero() {
	for i := range f {
		f[i].Zero()
	}
}

// vssGenerate derives the t coefficients a_k = H("vss coeffs", seed ‖ k).
// A hash ≥ n is rejected as the spec's from_bytes_checked does.
func vssGenerate(seed *[32]byte, t int) (polynomial, error) {
	f := make(polynomial, t)
	var overflow bool
	for k := range f {
		h := taggedHash("vss coeffs", seed[:], be32(k))
		overflow = f[k].SetBytes(&h) != 0 || overflow
		clear(h[:])
	}
	if overflow {
		f.zero()
		return nil, errDerivation
	}
	return f, nil
}

// eval returns f(x) by Horner's rule; x is public, f secret.
func (f polynomial) eval(x uint32, out *btcec.ModNScalar) {
	var xs btcec.ModNScalar
	xs.SetInt(x)
	out.Zero()
	for k := len(f) - 1; k >= 0; k-- {
		out.Mul(&xs).Add(&f[k])
	}
}

// shares returns f(1), ..., f(n): the share for participant j is f(j+1).
func (f polynomial) shares(n int) []btcec.ModNScalar {
	s := make([]btcec.ModNScalar, n)
	for j := range s {
		f.eval(uint32(j)+1, &s[j])
	}
	return s
}

// commit returns (a_0·G, ..., a_{t-1}·G), constant time in the coefficients.
func (f polynomial) commit() commitment {
	c := make(commitment, len(f))
	for k := range f {
		secp.ScalarBaseMult(&f[k], &c[k].j)
	}
	return c
}

// taprootTweak returns the BIP341 tweak for an unspendable script path of
// the threshold key pk = sum_coms[0]: t = H_TapTweak(xonly(pk)), as a scalar
// (added to every secret share) and as a point (added to com[0]). Public.
func taprootTweak(pk *point) (btcec.ModNScalar, point, error) {
	var tw btcec.ModNScalar
	if pk.isInfinity() {
		return tw, point{}, errors.New("threshold public key is the point at infinity")
	}
	x := pk.xOnly()
	h := bip340.TaggedHash("TapTweak", x[:])
	if tw.SetBytes(&h) != 0 {
		return tw, point{}, errDerivation
	}
	return tw, scalarBaseMultPublic(&tw), nil
}

// tweaked returns com with the Taproot tweak point added to its constant
// term, and the tweak itself.
func (c commitment) tweaked() (commitment, btcec.ModNScalar, point, error) {
	tw, twp, err := taprootTweak(&c[0])
	if err != nil {
		return nil, tw, twp, err
	}
	out := make(commitment, len(c))
	copy(out, c)
	out[0].add(&c[0], &twp)
	return out, tw, twp, nil
}

// verifySecshare reports whether secshare·G equals pubshare: the product is
// computed in constant time; only the (public) outcome is revealed.
func verifySecshare(secshare *btcec.ModNScalar, pubshare *point) bool {
	var p point
	secp.ScalarBaseMult(secshare, &p.j)
	// secshare·G is affine or (for secshare = 0) all zero: encode it without
	// branching and compare without an early exit.
	p.j.X.Normalize()
	p.j.Y.Normalize()
	var got [pointSize]byte
	got[0] = 2 | byte(p.j.Y.IsOddBit())
	p.j.X.PutBytesUnchecked(got[1:])
	want := pubshare.bytesInf()
	ok := subtle.ConstantTimeCompare(got[:], want[:]) == 1 && !pubshare.isInfinity()
	clear(got[:])
	p.j.X.Zero()
	p.j.Y.Zero()
	return ok
}
