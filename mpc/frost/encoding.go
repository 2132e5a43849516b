package frost

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/libsecp"
)

// Sizes of the spec's byte encodings.
const (
	PubShareSize   = 33 // compressed point
	ThreshPKSize   = 33 // compressed point
	XOnlySize      = 32 // x-only point
	PubNonceSize   = 66 // two compressed points
	AggNonceSize   = 66 // two compressed points, infinity as 33 zero bytes
	PartialSigSize = 32 // scalar
	SignatureSize  = 64 // BIP340 signature
	TweakSize      = 32 // scalar
)

// PubShare is a participant's public share, 33-byte compressed.
type PubShare [PubShareSize]byte

// PubNonce is a signer's public nonce: cbytes(R1) || cbytes(R2).
type PubNonce [PubNonceSize]byte

// AggNonce is an aggregate nonce: cbytes_ext(R1) || cbytes_ext(R2).
type AggNonce [AggNonceSize]byte

// PartialSig is a partial signature, a 32-byte big-endian scalar.
type PartialSig [PartialSigSize]byte

// Signature is a BIP340 signature: xbytes(R) || bytes(s).
type Signature [SignatureSize]byte

var (
	tagAux        = tagHash("BIP0445/aux")
	tagNonce      = tagHash("BIP0445/nonce")
	tagNonceCoef  = tagHash("BIP0445/noncecoef")
	tagDetNonce   = tagHash("BIP0445/deterministic/nonce")
	tagChallenge  = tagHash("BIP0340/challenge")
	scalarOne     = new(btcec.ModNScalar).SetInt(1)
	generatorAffn = func() btcec.JacobianPoint {
		var g btcec.JacobianPoint
		btcec.GeneratorJacobian(&g)
		g.ToAffine()
		return g
	}()
)

func tagHash(tag string) [32]byte { return sha256.Sum256([]byte(tag)) }

// taggedHasher starts hash_tag: SHA256(SHA256(tag) || SHA256(tag) || ...).
func taggedHasher(tag *[32]byte) hash.Hash {
	h := sha256.New()
	h.Write(tag[:])
	h.Write(tag[:])
	return h
}

func sumInto(h hash.Hash, out *[32]byte) { h.Sum(out[:0]) }

func be4(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func be8(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// isInfinity reports whether p is dcrd's point at infinity.
func isInfinity(p *btcec.JacobianPoint) bool {
	return (p.X.IsZero() && p.Y.IsZero()) || p.Z.IsZero()
}

func setInfinity(p *btcec.JacobianPoint) {
	p.X.Zero()
	p.Y.Zero()
	p.Z.Zero()
}

// normalizeAffine converts p to affine form, or to the canonical all-zero
// infinity. Public points only (dcrd's ToAffine is constant time anyway).
func normalizeAffine(p *btcec.JacobianPoint) {
	if isInfinity(p) {
		setInfinity(p)
		return
	}
	p.ToAffine()
}

// The point helpers below are for public data only (variable time). Their
// results are normalized Jacobian points, not affine: callers convert with
// affine when they need coordinates, saving an inversion per operation.

// addPublic returns a + b.
func addPublic(a, b *btcec.JacobianPoint) btcec.JacobianPoint {
	var r btcec.JacobianPoint
	btcec.AddNonConst(a, b, &r)
	return r
}

// mulPublic returns k·p (affine, or infinity), through libsecp256k1, which
// takes about a third of btcec's ScalarMultNonConst. Public data only.
func mulPublic(k *btcec.ModNScalar, p *btcec.JacobianPoint) btcec.JacobianPoint {
	var r btcec.JacobianPoint
	if k.IsZero() || isInfinity(p) {
		return r
	}
	a := *p
	if a.Z.Normalize(); !a.Z.IsOne() {
		a.ToAffine()
	} else {
		a.X.Normalize()
		a.Y.Normalize()
	}
	var in [65]byte
	in[0] = 4
	a.X.PutBytesUnchecked(in[1:33])
	a.Y.PutBytesUnchecked(in[33:])
	kb := k.Bytes()
	out, ok := libsecp.MulPoint(&in, &kb)
	if !ok {
		// Not reachable for a curve point and 0 < k < n; btcec's answer
		// keeps this function total.
		btcec.ScalarMultNonConst(k, p, &r)
		return r
	}
	r.X.SetByteSlice(out[1:33])
	r.Y.SetByteSlice(out[33:])
	r.Z.SetInt(1)
	return r
}

// baseMulPublic returns k·G.
func baseMulPublic(k *btcec.ModNScalar) btcec.JacobianPoint {
	var r btcec.JacobianPoint
	if k.IsZero() {
		return r
	}
	btcec.ScalarBaseMultNonConst(k, &r)
	return r
}

// affine returns p in affine form (or the canonical infinity).
func affine(p btcec.JacobianPoint) btcec.JacobianPoint {
	normalizeAffine(&p)
	return p
}

// jacobianEqual compares two normalized Jacobian points without inversions.
func jacobianEqual(a, b *btcec.JacobianPoint) bool {
	ai, bi := isInfinity(a), isInfinity(b)
	if ai || bi {
		return ai && bi
	}
	var za2, zb2, l, r btcec.FieldVal
	za2.SquareVal(&a.Z)
	zb2.SquareVal(&b.Z)
	l.Mul2(&a.X, &zb2).Normalize()
	r.Mul2(&b.X, &za2).Normalize()
	if !l.Equals(&r) {
		return false
	}
	za2.Mul(&a.Z) // Z_a^3
	zb2.Mul(&b.Z) // Z_b^3
	l.Mul2(&a.Y, &zb2).Normalize()
	r.Mul2(&b.Y, &za2).Normalize()
	return l.Equals(&r)
}

// negatePoint returns -p (normalized Jacobian or affine in, same form out).
func negatePoint(p *btcec.JacobianPoint) btcec.JacobianPoint {
	var r btcec.JacobianPoint
	r.Set(p)
	if !isInfinity(p) {
		r.Y.Negate(1).Normalize()
	}
	return r
}

// hasEvenY reports the parity of an affine point's y (true for infinity, which
// with_even_y leaves unchanged).
func hasEvenY(p *btcec.JacobianPoint) bool { return !p.Y.IsOdd() }

// cpoint decodes a 33-byte compressed point; fails on any other length, tag,
// x >= p or x not on the curve. Public data: libsecp256k1 decompresses (its
// square root is about twice as fast as dcrd's).
func cpoint(b []byte) (btcec.JacobianPoint, bool) {
	var p btcec.JacobianPoint
	var xy [64]byte
	if !libsecp.ParseCompressed(b, &xy) {
		return p, false
	}
	p.X.SetBytes((*[32]byte)(xy[:32]))
	p.Y.SetBytes((*[32]byte)(xy[32:]))
	p.Z.SetInt(1)
	return p, true
}

// cpointExt is cpoint that also maps 33 zero bytes to infinity.
func cpointExt(b []byte) (btcec.JacobianPoint, bool) {
	if len(b) == 33 && isAllZero(b) {
		return btcec.JacobianPoint{}, true
	}
	return cpoint(b)
}

func isAllZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// cbytes encodes an affine, non-infinity point compressed. Branch-free, so
// that encoding a point computed from a secret (a pubshare, a pubnonce) takes
// the same time whatever its parity.
func cbytes(p *btcec.JacobianPoint) [33]byte {
	var out [33]byte
	out[0] = 2 | byte(p.Y.IsOddBit())
	p.X.PutBytesUnchecked(out[1:])
	return out
}

// cbytesExt is cbytes with infinity encoded as 33 zero bytes.
func cbytesExt(p *btcec.JacobianPoint) [33]byte {
	if isInfinity(p) {
		return [33]byte{}
	}
	return cbytes(p)
}

// xbytes encodes the x coordinate of an affine, non-infinity point.
func xbytes(p *btcec.JacobianPoint) [32]byte {
	var out [32]byte
	p.X.PutBytesUnchecked(out[:])
	return out
}

// scalarChecked decodes 32 bytes as a scalar, failing if >= n.
func scalarChecked(b []byte) (btcec.ModNScalar, bool) {
	var s btcec.ModNScalar
	if len(b) != 32 {
		return s, false
	}
	if overflow := s.SetByteSlice(b); overflow {
		return btcec.ModNScalar{}, false
	}
	return s, true
}

// scalarWrapping reduces a 32-byte big-endian value modulo n (constant time).
func scalarWrapping(b *[32]byte) btcec.ModNScalar {
	var s btcec.ModNScalar
	s.SetBytes(b)
	return s
}

// scalarFromUint64 returns Scalar(v).
func scalarFromUint64(v uint64) btcec.ModNScalar {
	var b [32]byte
	binary.BigEndian.PutUint64(b[24:], v)
	return scalarWrapping(&b)
}

// ParsePubShare decodes a 33-byte compressed public share.
func ParsePubShare(b []byte) (PubShare, error) {
	var ps PubShare
	if _, ok := cpoint(b); !ok {
		return ps, inputErr(ErrEncoding)
	}
	copy(ps[:], b)
	return ps, nil
}

// ParsePubNonce decodes a 66-byte public nonce; both halves must be valid
// compressed points.
func ParsePubNonce(b []byte) (PubNonce, error) {
	var pn PubNonce
	if len(b) != PubNonceSize {
		return pn, inputErr(ErrEncoding)
	}
	if _, ok := cpoint(b[:33]); !ok {
		return pn, inputErr(ErrEncoding)
	}
	if _, ok := cpoint(b[33:]); !ok {
		return pn, inputErr(ErrEncoding)
	}
	copy(pn[:], b)
	return pn, nil
}

// ParseAggNonce decodes a 66-byte aggregate nonce; each half is a compressed
// point or 33 zero bytes (infinity).
func ParseAggNonce(b []byte) (AggNonce, error) {
	var an AggNonce
	if len(b) != AggNonceSize {
		return an, inputErr(ErrEncoding)
	}
	if _, ok := cpointExt(b[:33]); !ok {
		return an, inputErr(ErrEncoding)
	}
	if _, ok := cpointExt(b[33:]); !ok {
		return an, inputErr(ErrEncoding)
	}
	copy(an[:], b)
	return an, nil
}

// ParsePartialSig decodes a 32-byte partial signature, which must be < n.
func ParsePartialSig(b []byte) (PartialSig, error) {
	var ps PartialSig
	if _, ok := scalarChecked(b); !ok {
		return ps, inputErr(ErrEncoding)
	}
	copy(ps[:], b)
	return ps, nil
}

// ParseSecShare decodes a 32-byte secret share (spec:
// scalar_from_bytes_nonzero_checked). Constant time in the value; only the
// validity outcome is revealed. The caller owns and must Zero the result.
func ParseSecShare(b []byte) (*btcec.ModNScalar, error) {
	if len(b) != 32 {
		return nil, inputErr(ErrSecShareOutOfRange)
	}
	s := new(btcec.ModNScalar)
	overflow := s.SetByteSlice(b)
	if overflow || s.IsZero() {
		s.Zero()
		return nil, inputErr(ErrSecShareOutOfRange)
	}
	return s, nil
}
