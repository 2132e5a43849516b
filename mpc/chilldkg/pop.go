package chilldkg

import (
	"crypto/sha256"
	"errors"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// Proofs of possession. The spec signs them with BIP340 under the tag prefix
// "BIP DKG/pop message" instead of "BIP0340" (tags ".../aux", ".../nonce",
// ".../challenge"), which mpc/bip340 does not offer, so the few lines of
// BIP340 signing are here with those tags. The message is the signer's id as
// 4 big-endian bytes.

var (
	popTagAux       = sha256.Sum256([]byte(bipTag + "pop message/aux"))
	popTagNonce     = sha256.Sum256([]byte(bipTag + "pop message/nonce"))
	popTagChallenge = sha256.Sum256([]byte(bipTag + "pop message/challenge"))
)

const popSize = 64

func tagged(tag *[32]byte, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write(tag[:])
	h.Write(tag[:])
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// condNegate sets s = -s if flag is 1, constant time (multiply by 1 - 2·flag).
func condNegate(s *btcec.ModNScalar, flag uint32) {
	var m, one btcec.ModNScalar
	m.SetInt((flag & 1) << 1).Negate()
	one.SetInt(1)
	m.Add(&one)
	s.Mul(&m)
}

// popSign signs id with the secret a_0 (BIP340 with the pop tags). Constant
// time in a_0 and the nonce: SHA-256, ModNScalar and mpc/secp only, parity
// handled by condNegate.
func popSign(secret *btcec.ModNScalar, id int, auxRand *[32]byte) ([popSize]byte, error) {
	var sig [popSize]byte
	msg := be32(id)
	var d, k, e btcec.ModNScalar
	defer d.Zero()
	defer k.Zero()
	d.Set(secret)
	var p, r btcec.JacobianPoint
	secp.ScalarBaseMult(&d, &p)
	p.X.Normalize()
	p.Y.Normalize()
	var px [32]byte
	p.X.PutBytesUnchecked(px[:])
	condNegate(&d, p.Y.IsOddBit())

	t := tagged(&popTagAux, auxRand[:])
	db := d.Bytes()
	for i := range t {
		t[i] ^= db[i]
	}
	clear(db[:])
	rnd := tagged(&popTagNonce, t[:], px[:], msg)
	clear(t[:])
	k.SetBytes(&rnd)
	clear(rnd[:])
	if k.IsZero() {
		return sig, errors.New("chilldkg: zero nonce (probability ~2^-256)")
	}
	secp.ScalarBaseMult(&k, &r)
	r.X.Normalize()
	r.Y.Normalize()
	var rx [32]byte
	r.X.PutBytesUnchecked(rx[:])
	condNegate(&k, r.Y.IsOddBit())

	ch := tagged(&popTagChallenge, rx[:], px[:], msg)
	e.SetBytes(&ch)
	e.Mul(&d).Add(&k)
	copy(sig[:32], rx[:])
	e.PutBytesUnchecked(sig[32:])
	e.Zero()
	return sig, nil
}

// popVerify checks a pop of id under the commitment to the secret com0
// (x-only, as the spec verifies it). Variable time; all inputs public.
func popVerify(sig []byte, com0 *point, id int) bool {
	if len(sig) != popSize || com0.isInfinity() {
		return false
	}
	px := com0.xOnly()
	var pk point // lift_x: the even-y point with x = px
	var xf, c, y btcec.FieldVal
	xf.SetByteSlice(px[:])
	c.SquareVal(&xf).Mul(&xf).AddInt(7).Normalize()
	if !y.SquareRootVal(&c) {
		return false
	}
	y.Normalize()
	if y.IsOdd() {
		y.Negate(1).Normalize()
	}
	pk.j.X.Set(&xf)
	pk.j.Y.Set(&y)
	pk.j.Z.SetInt(1)

	var rf btcec.FieldVal
	if rf.SetByteSlice(sig[:32]) {
		return false
	}
	var s btcec.ModNScalar
	if s.SetByteSlice(sig[32:]) {
		return false
	}
	ch := tagged(&popTagChallenge, sig[:32], px[:], be32(id))
	var e btcec.ModNScalar
	e.SetBytes(&ch)
	e.Negate()
	// R = s·G - e·P
	var sg, ep, rr btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(&s, &sg)
	btcec.ScalarMultNonConst(&e, &pk.j, &ep)
	btcec.AddNonConst(&sg, &ep, &rr)
	if rr.Z.IsZero() || (rr.X.IsZero() && rr.Y.IsZero()) {
		return false
	}
	rr.ToAffine()
	return !rr.Y.IsOdd() && rr.X.Equals(&rf)
}
