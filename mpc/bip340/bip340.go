// Package bip340 implements single-signer BIP340 Schnorr signatures over
// secp256k1: signing in constant time with respect to the private key, and a
// verifier written from the BIP340 pseudo-code.
//
// quorumd uses it to sign ceremony envelopes with a party's identity key and
// as an independent reference verifier for the threshold signatures: Verify
// shares no code with btcec's schnorr package (it uses only dcrd's field,
// scalar and variable-time point arithmetic, which is fine on public data).
//
// Constant-time rule: the private key and the nonce only ever meet ModNScalar
// arithmetic, SHA-256, and mpc/secp (constant-time k·G). Conditional negations
// are done by multiplying with ±1 computed from the parity bit, never by a
// branch. No ...NonConst function touches secret data; Verify (variable time)
// only sees public values.
package bip340

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/libsecp"
	"github.com/quorumd/quorumd/mpc/secp"
)

// Sizes of BIP340 encodings.
const (
	PrivateKeySize = 32
	PublicKeySize  = 32
	SignatureSize  = 64
)

// Errors returned by this package; callers match them with errors.Is.
var (
	// ErrInvalidPrivateKey: the private key is zero or not below the group order.
	ErrInvalidPrivateKey = errors.New("bip340: invalid private key")
	// ErrInvalidPublicKey: not 32 bytes, or not the x coordinate of a curve point.
	ErrInvalidPublicKey = errors.New("bip340: invalid public key")
	// ErrMalformedSignature: not 64 bytes, r ≥ p or s ≥ n.
	ErrMalformedSignature = errors.New("bip340: malformed signature")
	// ErrInvalidSignature: well-formed, but the verification equation fails.
	ErrInvalidSignature = errors.New("bip340: invalid signature")
	// ErrSigningFailed: a nonce of zero (probability ~2^-256) or a signature
	// that failed its own verification (a fault); nothing is returned then.
	ErrSigningFailed = errors.New("bip340: signing failed")
)

// Precomputed tag hashes (SHA256(tag) twice) of the three BIP340 tags.
var (
	tagAux       = sha256.Sum256([]byte("BIP0340/aux"))
	tagNonce     = sha256.Sum256([]byte("BIP0340/nonce"))
	tagChallenge = sha256.Sum256([]byte("BIP0340/challenge"))
)

// TaggedHash returns SHA256(SHA256(tag) || SHA256(tag) || parts...), the BIP340
// tagged hash. SHA-256 runs in time independent of the data's values.
func TaggedHash(tag string, parts ...[]byte) [32]byte {
	th := sha256.Sum256([]byte(tag))
	return taggedHash(&th, parts...)
}

func taggedHash(tagHash *[32]byte, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write(tagHash[:])
	h.Write(tagHash[:])
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ParsePrivateKey decodes a 32-byte big-endian private key, rejecting 0 and
// values ≥ n. Constant time except for the validity outcome.
func ParsePrivateKey(b *[32]byte) (*btcec.ModNScalar, error) {
	var k btcec.ModNScalar
	overflow := k.SetBytes(b)
	if overflow|k.IsZeroBit() != 0 {
		k.Zero()
		return nil, ErrInvalidPrivateKey
	}
	return &k, nil
}

// condNegate sets s = -s when flag is 1 and leaves it when flag is 0, in
// constant time: s is multiplied by 1 - 2·flag (i.e. 1 or n-1), so the same
// instructions run either way.
func condNegate(s *btcec.ModNScalar, flag uint32) {
	var m, one btcec.ModNScalar
	m.SetInt((flag & 1) << 1).Negate() // 0 or -2
	one.SetInt(1)
	m.Add(&one) // 1 or -1
	s.Mul(&m)
}

// baseMult returns k·G as an affine point with normalized coordinates, via the
// constant-time mpc/secp, and reports whether it is the point at infinity.
func baseMult(k *btcec.ModNScalar, r *btcec.JacobianPoint) (infinity bool) {
	secp.ScalarBaseMult(k, r)
	r.X.Normalize()
	r.Y.Normalize()
	return r.Z.IsZero() || (r.X.IsZero() && r.Y.IsZero())
}

// PublicKey returns the x-only public key bytes(d·G) of priv, constant time in
// priv. It fails only for a zero key.
func PublicKey(priv *btcec.ModNScalar) ([32]byte, error) {
	var out [32]byte
	if priv == nil || priv.IsZero() {
		return out, ErrInvalidPrivateKey
	}
	var p btcec.JacobianPoint
	baseMult(priv, &p)
	p.X.PutBytes(&out)
	return out, nil
}

// Sign returns the BIP340 signature of msg (any length) under priv with the
// auxiliary randomness auxRand, byte-for-byte as the BIP340 reference.
//
// Constant time in priv and in the derived nonce: both scalar multiplications
// go through mpc/secp, the parity-dependent negations use condNegate, and the
// nonce is derived with SHA-256 only. The final self-check (Verify) is
// variable time but only sees the public key, message and signature. Secret
// intermediates are zeroed before returning; priv is left untouched.
func Sign(priv *btcec.ModNScalar, msg []byte, auxRand [32]byte) ([64]byte, error) {
	if priv == nil || priv.IsZero() {
		return [64]byte{}, ErrInvalidPrivateKey
	}
	var p btcec.JacobianPoint
	baseMult(priv, &p)
	var px [32]byte
	p.X.PutBytes(&px)
	return sign(priv, &px, p.Y.IsOddBit(), msg, auxRand)
}

// SignWithPublicKey is Sign for a caller that already holds priv's public key
// pub (33-byte compressed), saving one constant-time k·G. A pub that does not
// belong to priv yields ErrSigningFailed from the self-check, never a
// signature. Constant time in priv as Sign.
func SignWithPublicKey(priv *btcec.ModNScalar, pub *[33]byte, msg []byte, auxRand [32]byte) ([64]byte, error) {
	if priv == nil || priv.IsZero() {
		return [64]byte{}, ErrInvalidPrivateKey
	}
	if pub[0] != 2 && pub[0] != 3 {
		return [64]byte{}, fmt.Errorf("%w: public key is not compressed", ErrSigningFailed)
	}
	px := [32]byte(pub[1:])
	return sign(priv, &px, uint32(pub[0]&1), msg, auxRand)
}

// sign is Sign given the x coordinate and y parity (public) of priv·G:
// signCore, then BIP340's recommended self-check against fault attacks that
// would otherwise leak d through a wrong signature. The check is a
// verification on public values (variable time; its time depends on the
// public key, which is public, but not on whether it was seen before).
func sign(priv *btcec.ModNScalar, px *[32]byte, oddY uint32, msg []byte, auxRand [32]byte) ([64]byte, error) {
	sig, err := signCore(priv, px, oddY, msg, auxRand)
	if err != nil {
		return sig, err
	}
	// libsecp.VerifySchnorr parses px afresh: signing takes the same time
	// whether or not this key was verified under before.
	if libsecp.VerifySchnorr(px, msg, &sig) != libsecp.Valid {
		clear(sig[:])
		return sig, fmt.Errorf("%w: self-verification failed", ErrSigningFailed)
	}
	return sig, nil
}

// signCore is the part of signing that touches the secret key and nonce:
// nonce derivation, R = k·G and s = k + e·d. Constant time in priv and k.
func signCore(priv *btcec.ModNScalar, px *[32]byte, oddY uint32, msg []byte, auxRand [32]byte) ([64]byte, error) {
	var sig [64]byte
	var d, k, e btcec.ModNScalar
	defer d.Zero()
	defer k.Zero()
	d.Set(priv)
	var r btcec.JacobianPoint
	condNegate(&d, oddY)

	// t = bytes(d) xor hash_aux(a); rand = hash_nonce(t || bytes(P) || m).
	t := taggedHash(&tagAux, auxRand[:])
	db := d.Bytes()
	for i := range t {
		t[i] ^= db[i]
	}
	clear(db[:])
	rnd := taggedHash(&tagNonce, t[:], px[:], msg)
	clear(t[:])
	k.SetBytes(&rnd)
	clear(rnd[:])
	if k.IsZero() {
		return sig, fmt.Errorf("%w: zero nonce", ErrSigningFailed)
	}

	baseMult(&k, &r)
	var rx [32]byte
	r.X.PutBytes(&rx)
	condNegate(&k, r.Y.IsOddBit())

	ch := taggedHash(&tagChallenge, rx[:], px[:], msg)
	e.SetBytes(&ch)

	// s = k + e·d (mod n)
	e.Mul(&d).Add(&k)
	copy(sig[:32], rx[:])
	e.PutBytesUnchecked(sig[32:])
	return sig, nil
}

// liftX returns the point with x coordinate x and even y (BIP340 lift_x).
// Variable time; x is public.
func liftX(xb []byte, out *btcec.JacobianPoint) bool {
	if len(xb) != 32 {
		return false
	}
	var x, c, y btcec.FieldVal
	if x.SetByteSlice(xb) { // x ≥ p
		return false
	}
	// c = x³ + 7; y = c^((p+1)/4), which is a square root iff c is a square.
	c.SquareVal(&x).Mul(&x).AddInt(7).Normalize()
	if !y.SquareRootVal(&c) {
		return false
	}
	y.Normalize()
	if y.IsOdd() {
		y.Negate(1).Normalize()
	}
	out.X.Set(&x)
	out.Y.Set(&y)
	out.Z.SetInt(1)
	return true
}

// ParsePublicKey decodes a 32-byte x-only public key into the curve point with
// that x coordinate and even y. Variable time (public data).
func ParsePublicKey(pub []byte) (*btcec.PublicKey, error) {
	var p btcec.JacobianPoint
	if !liftX(pub, &p) {
		return nil, ErrInvalidPublicKey
	}
	return btcec.NewPublicKey(&p.X, &p.Y), nil
}

// XOnly returns the BIP340 x-only encoding of pub (its x coordinate).
func XOnly(pub *btcec.PublicKey) [32]byte {
	var out [32]byte
	x := pub.X()
	x.FillBytes(out[:])
	return out
}

// HasEvenY reports whether pub's y coordinate is even, i.e. whether XOnly(pub)
// lifts back to pub itself rather than to its negation.
func HasEvenY(pub *btcec.PublicKey) bool {
	return pub.SerializeCompressed()[0] == 0x02
}

// parseSignature splits sig into r < p and s < n, or says why it cannot.
func parseSignature(sig []byte, r *btcec.FieldVal, s *btcec.ModNScalar) error {
	if len(sig) != SignatureSize {
		return fmt.Errorf("%w: length %d", ErrMalformedSignature, len(sig))
	}
	if r.SetByteSlice(sig[:32]) {
		return fmt.Errorf("%w: r not below the field size", ErrMalformedSignature)
	}
	if s.SetByteSlice(sig[32:]) {
		return fmt.Errorf("%w: s not below the group order", ErrMalformedSignature)
	}
	return nil
}

// Verify checks a BIP340 signature of msg (any length) under the x-only key
// pub with libsecp256k1's secp256k1_schnorrsig_verify (mpc/internal/libsecp),
// which costs about a quarter of btcec's verification. Variable time: every
// input is public. Returns nil, or an error matching ErrInvalidPublicKey,
// ErrMalformedSignature or ErrInvalidSignature.
func Verify(pub, msg, sig []byte) error {
	if len(pub) != 32 {
		return ErrInvalidPublicKey
	}
	// libsecp256k1 folds a malformed signature into "invalid"; it is checked
	// here so the error says which input is wrong, as VerifyReference's does.
	var r btcec.FieldVal
	var s btcec.ModNScalar
	if err := parseSignature(sig, &r, &s); err != nil {
		return err
	}
	switch libsecp.VerifySchnorrKnownKey((*[32]byte)(pub), msg, (*[64]byte)(sig)) {
	case libsecp.Valid:
		return nil
	case libsecp.BadPublicKey:
		return ErrInvalidPublicKey
	default:
		return ErrInvalidSignature
	}
}

// VerifyReference is Verify written out from the BIP340 verification
// pseudo-code on dcrd's public-data operations, in Go. It is the second,
// independent verifier: tests hold Verify (libsecp256k1), VerifyReference and
// btcec's schnorr package to the same answers. Variable time; same errors as
// Verify.
func VerifyReference(pub, msg, sig []byte) error {
	var p btcec.JacobianPoint
	if !liftX(pub, &p) {
		return ErrInvalidPublicKey
	}
	var r btcec.FieldVal
	var s btcec.ModNScalar
	if err := parseSignature(sig, &r, &s); err != nil {
		return err
	}

	ch := taggedHash(&tagChallenge, sig[:32], pub, msg)
	var e btcec.ModNScalar
	e.SetBytes(&ch)

	// R = s·G - e·P
	var sG, eP, R btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(&s, &sG)
	e.Negate()
	btcec.ScalarMultNonConst(&e, &p, &eP)
	btcec.AddNonConst(&sG, &eP, &R)

	if R.Z.IsZero() || (R.X.IsZero() && R.Y.IsZero()) {
		return fmt.Errorf("%w: R is infinity", ErrInvalidSignature)
	}
	R.ToAffine()
	if R.Y.IsOdd() {
		return fmt.Errorf("%w: R has odd y", ErrInvalidSignature)
	}
	if !R.X.Equals(&r) {
		return ErrInvalidSignature
	}
	return nil
}
