package chilldkg

import (
	"errors"

	"github.com/btcsuite/btcd/btcec/v2"
)

// Public curve points. Everything in this file runs in variable time (btcec
// NonConst arithmetic) and must only ever see public data: commitments,
// public shares, public nonces, host public keys.

// pointSize is the compressed encoding; infinity is 33 zero bytes where the
// spec allows it ("with infinity").
const pointSize = 33

var errBadPoint = errors.New("not a valid compressed point")

// point is a public curve point in Jacobian coordinates; Z = 0 is infinity.
type point struct{ j btcec.JacobianPoint }

func (p *point) isInfinity() bool {
	return p.j.Z.IsZero() || (p.j.X.IsZero() && p.j.Y.IsZero())
}

// parsePoint decodes a compressed point (prefix 02/03, x < p, on the curve);
// infinity is rejected.
func parsePoint(b []byte) (point, error) {
	var p point
	if len(b) != pointSize || (b[0] != 2 && b[0] != 3) {
		return p, errBadPoint
	}
	pk, err := btcec.ParsePubKey(b)
	if err != nil {
		return p, errBadPoint
	}
	pk.AsJacobian(&p.j)
	return p, nil
}

// parsePointInf is parsePoint that also accepts 33 zero bytes as infinity.
func parsePointInf(b []byte) (point, error) {
	if len(b) == pointSize && isZeros(b) {
		return point{}, nil
	}
	return parsePoint(b)
}

func isZeros(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// bytesInf encodes p compressed, infinity as 33 zero bytes.
func (p *point) bytesInf() [pointSize]byte {
	var out [pointSize]byte
	if p.isInfinity() {
		return out
	}
	a := p.j
	a.ToAffine()
	out[0] = 2 | byte(a.Y.IsOddBit())
	a.X.PutBytesUnchecked(out[1:])
	return out
}

// bytesCompressed encodes a point that must not be infinity.
func (p *point) bytesCompressed() ([pointSize]byte, bool) {
	if p.isInfinity() {
		return [pointSize]byte{}, false
	}
	return p.bytesInf(), true
}

// xOnly returns the 32-byte x coordinate (p must not be infinity).
func (p *point) xOnly() [32]byte {
	b := p.bytesInf()
	return [32]byte(b[1:])
}

func (p *point) equal(q *point) bool {
	pi, qi := p.isInfinity(), q.isInfinity()
	if pi || qi {
		return pi == qi
	}
	return p.bytesInf() == q.bytesInf()
}

// add sets p = a + b.
func (p *point) add(a, b *point) *point {
	var r btcec.JacobianPoint
	btcec.AddNonConst(&a.j, &b.j, &r)
	p.j = r
	return p
}

// mulSmall sets p = k·a for a small public k by double-and-add, far cheaper
// than a full-width multiplication for the participant numbers (≤ 2^32) used
// in share evaluation.
func (p *point) mulSmall(k uint64, a *point) *point {
	var acc btcec.JacobianPoint // infinity
	base := a.j
	first := true
	for bit := 63; bit >= 0; bit-- {
		if !first {
			btcec.DoubleNonConst(&acc, &acc)
		}
		if k>>uint(bit)&1 == 1 {
			if first {
				acc = base
				first = false
			} else {
				btcec.AddNonConst(&acc, &base, &acc)
			}
		}
	}
	p.j = acc
	return p
}

// sumPoints returns the sum of ps.
func sumPoints(ps []point) point {
	var acc point
	for i := range ps {
		acc.add(&acc, &ps[i])
	}
	return acc
}

// scalarBaseMultPublic returns k·G for a public scalar k.
func scalarBaseMultPublic(k *btcec.ModNScalar) point {
	var p point
	btcec.ScalarBaseMultNonConst(k, &p.j)
	return p
}

// commitment is a VSS commitment: com[k] = a_k·G; entries may be infinity.
type commitment []point

// pubshare evaluates the committed polynomial at id+1 in the exponent,
// Horner's rule with small multipliers: Σ_k (id+1)^k · com[k].
func (c commitment) pubshare(id int) point {
	x := uint64(id) + 1
	acc := c[len(c)-1]
	for k := len(c) - 2; k >= 0; k-- {
		acc.mulSmall(x, &acc)
		acc.add(&acc, &c[k])
	}
	return acc
}

func (c commitment) appendBytes(b []byte) []byte {
	for i := range c {
		e := c[i].bytesInf()
		b = append(b, e[:]...)
	}
	return b
}

func parseCommitment(b []byte, t int) (commitment, error) {
	if len(b) != pointSize*t {
		return nil, errBadPoint
	}
	c := make(commitment, t)
	for k := range c {
		var err error
		if c[k], err = parsePointInf(b[pointSize*k : pointSize*(k+1)]); err != nil {
			return nil, err
		}
	}
	return c, nil
}
