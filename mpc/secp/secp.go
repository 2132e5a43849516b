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
// # Two implementations
//
// ScalarBaseMult, ScalarMult and ECDH run libsecp256k1's constant-time
// routines through cgo (mpc/internal/libsecp): ecmult_gen under a context
// randomized at start (secp256k1_ec_pubkey_create) and ecmult_const
// (secp256k1_ecdh with a hash function that returns x, or x ‖ y). DESIGN §5
// allows this because of cost, about 3× and 5× faster than the pure-Go code
// here, and a ceremony does dozens of them per party. The secret crosses into
// C only from locked memory: it is written into a slot of an mlocked, dump-
// excluded page, read there in place and cleared after the call, and the C
// side overwrites the stack libsecp256k1 used. libsecp256k1 is the better-
// reviewed implementation; the cost is a C toolchain and Debian's
// libsecp256k1-dev for every build (already needed for verification).
//
// The pure-Go implementation below stays: it is the reference the libsecp256k1
// path is cross-checked against on edge and random inputs, the fallback when
// locked memory cannot be had (the choice is made once per process, never per
// scalar). It is built only from operations documented constant time: dcrd's
// FieldVal Zero, Set, SetInt, SetBytes, PutBytes, Normalize, IsZeroBit, Add,
// Add2, MulInt, Mul, Mul2, SquareVal, Negate and Inverse, ModNScalar.Bytes,
// and crypto/subtle. Both paths carry a dudect-style timing test
// (mpc/internal/dudect).
//
// Public-only work (BIP340 verification, FROST's point·scalar on public
// points and coefficients) also goes to libsecp256k1.
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
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/libsecp"
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
// It runs libsecp256k1's ecmult_gen (randomized context, scalar passed from
// and cleared in locked memory) when that backend is up, else the pure-Go
// scalarBaseMultGo; the choice is per process, never per scalar.
func ScalarBaseMult(k *btcec.ModNScalar, result *btcec.JacobianPoint) {
	if !useLibsecp {
		scalarBaseMultGo(k, result)
		return
	}
	var out [65]byte
	isZero := libsecp.BaseMult(k, &out)
	// out is k·G (or G for k = 0): public, and masked to infinity without a
	// branch so k = 0 takes the same path.
	var zero btcec.FieldVal
	result.X.SetBytes((*[32]byte)(out[1:33]))
	result.Y.SetBytes((*[32]byte)(out[33:65]))
	selectField(&result.X, &result.X, &zero, isZero)
	selectField(&result.Y, &result.Y, &zero, isZero)
	result.Z.SetInt(uint16(1 ^ isZero))
}

// useLibsecp is fixed at start: libsecp256k1's secret backend came up (a
// randomized context and locked memory).
var useLibsecp = libsecp.SecretAvailable() == nil

// Backend names what secret·point runs on in this process, "libsecp256k1"
// or "go", and, for "go", why libsecp256k1's secret backend is off (both
// are constant time; the pure-Go one is 2–4× slower). Daemons log it at
// start, since the fallback is otherwise silent.
func Backend() (name string, why error) {
	if useLibsecp {
		return "libsecp256k1", nil
	}
	return "go", libsecp.SecretAvailable()
}

// scalarBaseMultGo is ScalarBaseMult in pure Go, the reference the libsecp256k1
// path is cross-checked against.
//
// Constant time: the scalar recoded into 43 signed 6-bit digits with an
// arithmetic carry, 43 complete additions of entries selected by full scans
// of fixed per-window tables (y negated under a mask for negative digits),
// then one constant-time inversion; no branch and no memory index depends
// on k, including for k = 0.
func scalarBaseMultGo(k *btcec.ModNScalar, result *btcec.JacobianPoint) {
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

// ScalarMult sets result = k·P, constant time in k. P must be a valid point
// (or infinity). result is affine or infinity as above; P's Jacobian Z may be
// any value; result may alias p.
//
// With the libsecp256k1 backend it runs ecmult_const (secp256k1_ecdh with a
// hash function that returns x ‖ y); P is treated as public there (its
// infinity and affine form are found in variable time; quorumd's one caller
// passes a peer's public nonce). Without it, scalarMultGo, also constant
// time in P.
func ScalarMult(k *btcec.ModNScalar, p, result *btcec.JacobianPoint) {
	if !useLibsecp {
		scalarMultGo(k, p, result)
		return
	}
	var pa btcec.JacobianPoint
	pa.Set(p)
	if pa.Z.Normalize().IsZero() {
		result.X.Zero()
		result.Y.Zero()
		result.Z.Zero()
		return
	}
	pa.ToAffine()
	var enc [65]byte
	enc[0] = 4
	pa.X.PutBytesUnchecked(enc[1:33])
	pa.Y.PutBytesUnchecked(enc[33:65])
	var out [64]byte
	isZero, err := libsecp.Mul(k, &enc, &out)
	if err != nil {
		// Not a curve point (public): keep the documented garbage-in
		// behaviour of the pure-Go path rather than panic.
		scalarMultGo(k, p, result)
		return
	}
	var zero btcec.FieldVal
	result.X.SetBytes((*[32]byte)(out[:32]))
	result.Y.SetBytes((*[32]byte)(out[32:]))
	clear(out[:])
	selectField(&result.X, &result.X, &zero, isZero)
	selectField(&result.Y, &result.Y, &zero, isZero)
	result.Z.SetInt(uint16(1 ^ isZero))
}

// scalarMultGo is ScalarMult in pure Go, the cross-check reference.
//
// Constant time: a 16-entry table of multiples of P built with complete
// formulas, then 63 rounds of four doublings and one addition of an entry
// selected by a full table scan, then one constant-time inversion. Infinity
// (k = 0 or P = ∞) takes the same path. P's Jacobian Z may be any value;
// result may alias p.
func scalarMultGo(k *btcec.ModNScalar, p, result *btcec.JacobianPoint) {
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
// It fails if the product is the point at infinity. Like ScalarBaseMult it
// runs libsecp256k1 (secp256k1_ecdh, ecmult_const) when that backend is up,
// else ecdhGo.
func ECDH(priv *btcec.ModNScalar, pub *btcec.PublicKey) ([32]byte, error) {
	if !useLibsecp {
		return ecdhGo(priv, pub)
	}
	// pub is public: validating and encoding it in variable time is fine.
	if pub == nil || !pub.IsOnCurve() {
		return [32]byte{}, ErrInvalidPublicKey
	}
	var p btcec.JacobianPoint
	pub.AsJacobian(&p)
	var enc [65]byte
	enc[0] = 4
	p.X.PutBytesUnchecked(enc[1:33])
	p.Y.PutBytesUnchecked(enc[33:65])
	x, ok, err := libsecp.ECDH(priv, &enc)
	switch {
	case err != nil:
		return [32]byte{}, fmt.Errorf("%w: %w", ErrInvalidPublicKey, err)
	case !ok:
		// The one documented branch: priv ≡ 0.
		return [32]byte{}, ErrPointAtInfinity
	}
	return x, nil
}

// ecdhGo is ECDH in pure Go over ScalarMult, the cross-check reference.
//
// Constant time: ScalarMult, then a single branch on whether the final result
// is infinity. On the prime-order secp256k1 group with a valid pub that is
// exactly priv ≡ 0, so the branch reveals nothing beyond "priv is zero",
// which no caller may use as a key. The result equals btcec's
// GenerateSharedSecret (raw x, unhashed); hash it before use as a key.
func ecdhGo(priv *btcec.ModNScalar, pub *btcec.PublicKey) ([32]byte, error) {
	var out [32]byte
	// pub is public: validating it in variable time is fine.
	if pub == nil || !pub.IsOnCurve() {
		return out, ErrInvalidPublicKey
	}
	var p, r btcec.JacobianPoint
	pub.AsJacobian(&p)
	scalarMultGo(priv, &p, &r)
	if r.Z.IsZero() {
		return out, ErrPointAtInfinity
	}
	r.X.PutBytes(&out)
	r.X.Zero()
	r.Y.Zero()
	return out, nil
}
