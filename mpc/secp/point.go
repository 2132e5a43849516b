package secp

import (
	"crypto/subtle"
	"encoding/binary"

	"github.com/btcsuite/btcd/btcec/v2"
)

// b3 is 3·b for secp256k1's y² = x³ + 7, the constant in the RCB formulas.
const b3 = 21

// projective is a point (X:Y:Z) with x = X/Z, y = Y/Z; infinity is (0:1:0).
// Field magnitudes (dcrd's bound on unreduced limbs) are tracked per function:
// add needs inputs ≤ 4, double ≤ 8, and both produce outputs ≤ 3.
type projective struct {
	x, y, z btcec.FieldVal
}

// setInfinity sets p = (0:1:0). Constant time.
func (p *projective) setInfinity() {
	p.x.Zero()
	p.y.SetInt(1)
	p.z.Zero()
}

// zero wipes p. Constant time.
func (p *projective) zero() {
	p.x.Zero()
	p.y.Zero()
	p.z.Zero()
}

// add sets r = p + q with RCB16 Algorithm 7 (a = 0): 12M, complete, so it is
// correct for p = q, p = −q and either operand ∞. Straight-line field
// arithmetic: constant time. Input magnitudes ≤ 4; outputs X ≤ 3, Y ≤ 2,
// Z ≤ 2. r may alias p or q.
func (r *projective) add(p, q *projective) {
	var t0, t1, t2, t3, t4, x3, y3, z3 btcec.FieldVal
	t0.Mul2(&p.x, &q.x)   // t0 = X1·X2                 mag 1
	t1.Mul2(&p.y, &q.y)   // t1 = Y1·Y2                 mag 1
	t2.Mul2(&p.z, &q.z)   // t2 = Z1·Z2                 mag 1
	t3.Add2(&p.x, &p.y)   // t3 = X1+Y1                 mag ≤ 8
	t4.Add2(&q.x, &q.y)   // t4 = X2+Y2                 mag ≤ 8
	t3.Mul(&t4)           // t3 = t3·t4                 mag 1
	t4.Add2(&t0, &t1)     // t4 = t0+t1                 mag 2
	t3.Add(t4.Negate(2))  // t3 = t3−t4                 mag 4
	t4.Add2(&p.y, &p.z)   // t4 = Y1+Z1                 mag ≤ 8
	x3.Add2(&q.y, &q.z)   // X3 = Y2+Z2                 mag ≤ 8
	t4.Mul(&x3)           // t4 = t4·X3                 mag 1
	x3.Add2(&t1, &t2)     // X3 = t1+t2                 mag 2
	t4.Add(x3.Negate(2))  // t4 = t4−X3                 mag 4
	x3.Add2(&p.x, &p.z)   // X3 = X1+Z1                 mag ≤ 8
	y3.Add2(&q.x, &q.z)   // Y3 = X2+Z2                 mag ≤ 8
	x3.Mul(&y3)           // X3 = X3·Y3                 mag 1
	y3.Add2(&t0, &t2)     // Y3 = t0+t2                 mag 2
	y3.Negate(2).Add(&x3) // Y3 = X3−Y3                 mag 4
	t0.MulInt(3)          // t0 = 3·t0 (steps 19–20)    mag 3
	t2.MulInt(b3)         // t2 = b3·t2                 mag 21
	t2.Normalize()        //                            mag 1
	z3.Add2(&t1, &t2)     // Z3 = t1+t2                 mag 2
	t1.Add(t2.Negate(1))  // t1 = t1−t2                 mag 3
	y3.Normalize()        //                            mag 1
	y3.MulInt(b3)         // Y3 = b3·Y3                 mag 21
	y3.Normalize()        //                            mag 1
	x3.Mul2(&t4, &y3)     // X3 = t4·Y3                 mag 1
	t2.Mul2(&t3, &t1)     // t2 = t3·t1                 mag 1
	x3.Negate(1).Add(&t2) // X3 = t2−X3                 mag 3
	y3.Mul(&t0)           // Y3 = Y3·t0                 mag 1
	t1.Mul(&z3)           // t1 = t1·Z3                 mag 1
	y3.Add(&t1)           // Y3 = t1+Y3                 mag 2
	t0.Mul(&t3)           // t0 = t0·t3                 mag 1
	z3.Mul(&t4)           // Z3 = Z3·t4                 mag 1
	z3.Add(&t0)           // Z3 = Z3+t0                 mag 2
	r.x.Set(&x3)
	r.y.Set(&y3)
	r.z.Set(&z3)
}

// double sets r = 2p with RCB16 Algorithm 9 (a = 0): 6M + 2S, complete
// (doubling ∞ or a point of order 2 needs no special case). Constant time.
// Input magnitudes ≤ 8; outputs X ≤ 2, Y ≤ 2, Z ≤ 1. r may alias p.
func (r *projective) double(p *projective) {
	var t0, t1, t2, x3, y3, z3 btcec.FieldVal
	t0.SquareVal(&p.y)    // t0 = Y·Y                   mag 1
	z3.Set(&t0).MulInt(8) // Z3 = 8·t0 (steps 2–4)      mag 8
	t1.Mul2(&p.y, &p.z)   // t1 = Y·Z                   mag 1
	t2.SquareVal(&p.z)    // t2 = Z·Z                   mag 1
	t2.MulInt(b3)         // t2 = b3·t2                 mag 21
	t2.Normalize()        //                            mag 1
	x3.Mul2(&t2, &z3)     // X3 = t2·Z3                 mag 1
	y3.Add2(&t0, &t2)     // Y3 = t0+t2                 mag 2
	z3.Mul(&t1)           // Z3 = t1·Z3                 mag 1
	t2.MulInt(3)          // t2 = 3·t2 (steps 11–12)    mag 3
	t0.Add(t2.Negate(3))  // t0 = t0−t2                 mag 5
	y3.Mul(&t0)           // Y3 = t0·Y3                 mag 1
	y3.Add(&x3)           // Y3 = X3+Y3                 mag 2
	t1.Mul2(&p.x, &p.y)   // t1 = X·Y                   mag 1
	x3.Mul2(&t0, &t1)     // X3 = t0·t1                 mag 1
	x3.MulInt(2)          // X3 = X3+X3                 mag 2
	r.x.Set(&x3)
	r.y.Set(&y3)
	r.z.Set(&z3)
}

// fromJacobian sets p to the Jacobian point j = (X, Y, Z), x = X/Z², y = Y/Z³,
// as (X·Z : Y : Z³); a Jacobian infinity (Z = 0) becomes (0:1:0). Constant
// time: the infinity case is a masked select, not a branch. Outputs are
// normalized.
func (p *projective) fromJacobian(j *btcec.JacobianPoint) {
	var x, y, z, zz btcec.FieldVal
	x.Set(&j.X).Normalize()
	y.Set(&j.Y).Normalize()
	z.Set(&j.Z).Normalize()
	inf := z.IsZeroBit()

	p.x.Mul2(&x, &z).Normalize()
	zz.SquareVal(&z)
	p.z.Mul2(&zz, &z).Normalize()
	var one btcec.FieldVal
	one.SetInt(1)
	selectField(&p.y, &y, &one, inf)
}

// toAffine writes p to r as an affine JacobianPoint (Z = 1, X and Y
// normalized), or X = Y = Z = 0 when p is infinity. Constant time: Inverse
// maps Z = 0 to 0, which zeroes X and Y without a branch, and r.Z is set from
// the zero bit arithmetically.
func (p *projective) toAffine(r *btcec.JacobianPoint) {
	var zInv, z btcec.FieldVal
	zInv.Set(&p.z).Inverse()
	r.X.Mul2(&p.x, &zInv).Normalize()
	r.Y.Mul2(&p.y, &zInv).Normalize()
	z.Set(&p.z).Normalize()
	r.Z.SetInt(uint16(1 ^ z.IsZeroBit()))
	zInv.Zero()
}

// packedFE is a normalized field element as four big-endian 64-bit words, the
// form table entries are kept in so that a masked select touches 4 words.
type packedFE [4]uint64

// pack stores the normalized f. Constant time.
func (e *packedFE) pack(f *btcec.FieldVal) {
	var b [32]byte
	f.PutBytes(&b)
	for i := range e {
		e[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	clear(b[:])
}

// unpack sets f to the stored element. Constant time.
func (e *packedFE) unpack(f *btcec.FieldVal) {
	var b [32]byte
	for i := range e {
		binary.BigEndian.PutUint64(b[8*i:], e[i])
	}
	f.SetBytes(&b)
	clear(b[:])
}

// selectField sets r = b if bit == 1 and r = a if bit == 0 (a, b normalized).
// Constant time: masks, no branch. r may alias a or b.
func selectField(r, a, b *btcec.FieldVal, bit uint32) {
	var pa, pb packedFE
	pa.pack(a)
	pb.pack(b)
	m := -uint64(bit & 1)
	for i := range pa {
		pa[i] = pa[i]&^m | pb[i]&m
	}
	pa.unpack(r)
	clear(pa[:])
	clear(pb[:])
}

// eqMask returns all ones if a == b and 0 otherwise. Constant time.
func eqMask(a, b uint8) uint64 {
	return -uint64(subtle.ConstantTimeByteEq(a, b))
}

// varEntry is one table entry: packed X, Y, Z.
type varEntry [3]packedFE

// varTable holds j·P for j = 0..15.
type varTable [16]varEntry

// build fills t with j·base for j = 0..15 using complete formulas only, so
// it is the same computation for every base (including ∞). Constant time.
func (t *varTable) build(base *projective) {
	var cur, dbl projective
	cur.setInfinity()
	t[0].store(&cur)
	t[1].store(base)
	dbl.double(base)
	cur = dbl
	t[2].store(&cur)
	for j := 3; j < len(t); j++ {
		cur.add(&cur, base)
		t[j].store(&cur)
	}
	cur.zero()
	dbl.zero()
}

// store normalizes p's coordinates into the entry (p is modified only in
// representation, not value). Constant time.
func (e *varEntry) store(p *projective) {
	e[0].pack(p.x.Normalize())
	e[1].pack(p.y.Normalize())
	e[2].pack(p.z.Normalize())
}

// lookup sets r = d·P. Constant time in d: all 16 entries are read and
// combined under masks.
func (t *varTable) lookup(d uint8, r *projective) {
	var acc varEntry
	for j := range t {
		m := eqMask(uint8(j), d)
		for c := range acc {
			for w := range acc[c] {
				acc[c][w] |= t[j][c][w] & m
			}
		}
	}
	acc[0].unpack(&r.x)
	acc[1].unpack(&r.y)
	acc[2].unpack(&r.z)
	clear(acc[:])
}

// zero wipes the table (it is derived from secret-independent P, but the
// caller may treat P as secret). Constant time.
func (t *varTable) zero() {
	clear(t[:])
}
