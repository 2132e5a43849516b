// Package secp holds the constant-time secp256k1 operations on secret data:
// secret·G, secret·P and ECDH. It is the only place in quorumd where a secret
// scalar meets a curve point.
//
// # Rule
//
// No ...NonConst function (btcec/dcrd ScalarBaseMultNonConst,
// ScalarMultNonConst, AddNonConst, DoubleNonConst, ModNScalar.InverseNonConst,
// GenerateSharedSecret, PrivKeyFromBytes().PubKey(), ...) may ever touch secret
// data. They are fine, and faster, on public data only (commitments, public
// shares, Lagrange coefficients, verification).
//
// # Why pure Go rather than cgo and libsecp256k1
//
// libsecp256k1 is the better-reviewed implementation, but linking it through
// cgo would make every build, test, race and fuzz run depend on a C toolchain
// and a distribution package, lose static cross-compilation, and move secrets
// across a language boundary where Go can neither see nor zero the copies.
// The code here is small (two complete formulas, two table scans and an
// inversion) and is built only from operations documented constant time:
// dcrd's FieldVal Zero, Set, SetInt, SetBytes, PutBytes, Normalize,
// IsZeroBit, Add, Add2, MulInt, Mul, Mul2, SquareVal, Negate and Inverse,
// ModNScalar.Bytes, and crypto/subtle. It is cross-checked against btcec's
// variable-time code on random and edge inputs and checked by a dudect-style
// timing test (mpc/internal/dudect). It costs about twice btcec's
// variable-time functions, well inside quorumd's budgets.
//
// The cgo objections are about secrets. BIP340 verification and FROST's
// point·scalar on public points and coefficients, which see only public data
// and are most of a ceremony's CPU, do go to libsecp256k1 (through
// mpc/internal/libsecp).
//
// # Design
//
// Points are kept in homogeneous projective coordinates (X:Y:Z), with x = X/Z,
// y = Y/Z and infinity (0:1:0), and combined only with the complete addition
// and doubling formulas of Renes, Costello and Batina (ePrint 2015/1060,
// Algorithms 7 and 9 for a = 0, b3 = 3·7 = 21). Complete means there are no
// exceptional cases (P = Q, P = −Q, either operand ∞), hence no branches. The
// scalar is read as fixed windows (k·P: 64 4-bit windows; k·G: 43 signed
// 6-bit digits); each window selects a table entry by scanning all entries
// with masks, so
// neither branches nor memory addresses depend on the scalar. The result is
// made affine with the constant-time FieldVal.Inverse, which maps Z = 0 to 0,
// so infinity needs no branch either.
package secp

import (
	"errors"

	"github.com/btcsuite/btcd/btcec/v2"
)

var (
	// ErrInvalidPublicKey is returned by ECDH for a nil or off-curve public key.
	ErrInvalidPublicKey = errors.New("secp: invalid public key")
	// ErrPointAtInfinity is returned by ECDH when priv·pub is the point at
	// infinity, which happens only for priv ≡ 0 (mod n).
	ErrPointAtInfinity = errors.New("secp: shared point is the point at infinity")
)

// ScalarBaseMult sets result = k·G, constant time in k. result is affine (Z=1)
// or the point at infinity (X=Y=Z=0) when k is zero.
//
// Constant time: the scalar recoded into 43 signed 6-bit digits with an
// arithmetic carry, 43 complete additions of entries selected by full scans
// of fixed per-window tables (y negated under a mask for negative digits),
// then one constant-time inversion; no branch and no memory index depends
// on k, including for k = 0.
func ScalarBaseMult(k *btcec.ModNScalar, result *btcec.JacobianPoint) {
	tab := baseTable()
	kb := k.Bytes()
	var mag, neg [windows]uint8
	signedDigits(&kb, &mag, &neg)
	var acc, q projective
	acc.setInfinity()
	for w := range windows {
		tab[w].lookup(mag[w], neg[w], &q)
		acc.add(&acc, &q)
	}
	acc.toAffine(result)

	clear(kb[:])
	clear(mag[:])
	clear(neg[:])
	acc.zero()
	q.zero()
}

// ScalarMult sets result = k·P, constant time in k (and in P). P must be a
// valid point (or infinity). result is affine or infinity as above.
//
// Constant time: a 16-entry table of multiples of P built with complete
// formulas, then 63 rounds of four doublings and one addition of an entry
// selected by a full table scan, then one constant-time inversion. Infinity
// (k = 0 or P = ∞) takes the same path. P's Jacobian Z may be any value;
// result may alias p.
func ScalarMult(k *btcec.ModNScalar, p, result *btcec.JacobianPoint) {
	var base projective
	base.fromJacobian(p)
	var tab varTable
	tab.build(&base)

	kb := k.Bytes()
	var acc, q projective
	tab.lookup(kb[0]>>4, &acc)
	for i := 1; i < 2*len(kb); i++ {
		// Nibble i counted from the most significant; its byte index is public.
		d := kb[i/2] >> (4 * (1 - i&1)) & 0xf
		acc.double(&acc)
		acc.double(&acc)
		acc.double(&acc)
		acc.double(&acc)
		tab.lookup(d, &q)
		acc.add(&acc, &q)
	}
	acc.toAffine(result)

	clear(kb[:])
	acc.zero()
	q.zero()
	tab.zero()
	base.zero()
}

// ECDH returns the 32-byte x coordinate of priv·pub, constant time in priv.
// It fails if the product is the point at infinity.
//
// Constant time: ScalarMult, then a single branch on whether the final result
// is infinity. On the prime-order secp256k1 group with a valid pub that is
// exactly priv ≡ 0, so the branch reveals nothing beyond "priv is zero",
// which no caller may use as a key. The result equals btcec's
// GenerateSharedSecret (raw x, unhashed); hash it before use as a key.
func ECDH(priv *btcec.ModNScalar, pub *btcec.PublicKey) ([32]byte, error) {
	var out [32]byte
	// pub is public: validating it in variable time is fine.
	if pub == nil || !pub.IsOnCurve() {
		return out, ErrInvalidPublicKey
	}
	var p, r btcec.JacobianPoint
	pub.AsJacobian(&p)
	ScalarMult(priv, &p, &r)
	if r.Z.IsZero() {
		return out, ErrPointAtInfinity
	}
	r.X.PutBytes(&out)
	r.X.Zero()
	r.Y.Zero()
	return out, nil
}
