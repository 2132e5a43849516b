package vss

import (
	"encoding/binary"

	"github.com/btcsuite/btcd/btcec/v2"
)

// Multi-scalar multiplication on public data: Straus' interleaved method
// with width-5 signed digits (wNAF), every table in affine form so that the
// additions are mixed ones. Variable time: public points and public scalars
// only (never a share, coefficient or nonce).

const wnafWidth = 5

// wnaf returns the width-w non-adjacent form of k, least significant digit
// first: odd digits in (−2^{w−1}, 2^{w−1}) separated by at least w−1 zeros.
func wnaf(k *btcec.ModNScalar) []int8 {
	b := k.Bytes()
	var l [5]uint64 // little-endian limbs, one spare for the carry
	for i := range 4 {
		l[i] = binary.BigEndian.Uint64(b[24-8*i:])
	}
	out := make([]int8, 0, 258)
	for l != [5]uint64{} {
		var d int64
		if l[0]&1 == 1 {
			d = int64(l[0] & (1<<wnafWidth - 1))
			if d >= 1<<(wnafWidth-1) {
				d -= 1 << wnafWidth
			}
			if d > 0 { // l −= d
				var borrow uint64 = uint64(d)
				for i := range l {
					v := l[i]
					l[i] = v - borrow
					if v >= borrow {
						break
					}
					borrow = 1
				}
			} else { // l += −d
				carry := uint64(-d)
				for i := range l {
					v := l[i]
					l[i] = v + carry
					if l[i] >= v {
						break
					}
					carry = 1
				}
			}
		}
		out = append(out, int8(d))
		for i := range 4 {
			l[i] = l[i]>>1 | l[i+1]<<63
		}
		l[4] >>= 1
	}
	return out
}

// msm returns Σ scalars[i]·points[i]; points must be finite. Public data.
func msm(points []btcec.JacobianPoint, scalars []btcec.ModNScalar) btcec.JacobianPoint {
	const size = 1 << (wnafWidth - 2) // odd multiples 1P, 3P, …, (2^{w−1}−1)P
	table := make([]btcec.JacobianPoint, len(points)*size)
	for i := range points {
		t := table[i*size : (i+1)*size]
		var twice btcec.JacobianPoint
		t[0].Set(&points[i])
		btcec.DoubleNonConst(&t[0], &twice)
		for j := 1; j < size; j++ {
			btcec.AddNonConst(&t[j-1], &twice, &t[j])
		}
	}
	normalize(table)
	digits := make([][]int8, len(points))
	top := 0
	for i := range scalars {
		digits[i] = wnaf(&scalars[i])
		top = max(top, len(digits[i]))
	}
	var acc, neg btcec.JacobianPoint
	for bit := top - 1; bit >= 0; bit-- {
		btcec.DoubleNonConst(&acc, &acc)
		for i, ds := range digits {
			if bit >= len(ds) || ds[bit] == 0 {
				continue
			}
			d := ds[bit]
			if d > 0 {
				btcec.AddNonConst(&acc, &table[i*size+int(d)/2], &acc)
				continue
			}
			neg.Set(&table[i*size+int(-d)/2])
			neg.Y.Negate(1).Normalize()
			btcec.AddNonConst(&acc, &neg, &acc)
		}
	}
	return acc
}

// normalize brings finite points to Z = 1 with one shared field inversion
// (Montgomery's trick). Public data.
func normalize(pts []btcec.JacobianPoint) {
	if len(pts) == 0 {
		return
	}
	prefix := make([]btcec.FieldVal, len(pts))
	var acc btcec.FieldVal
	acc.SetInt(1)
	for j := range pts {
		acc.Mul(&pts[j].Z).Normalize()
		prefix[j].Set(&acc)
	}
	inv := new(btcec.FieldVal).Set(&acc).Inverse()
	for j := len(pts) - 1; j >= 0; j-- {
		var zInv, z2, z3 btcec.FieldVal
		zInv.Set(inv)
		if j > 0 {
			zInv.Mul(&prefix[j-1])
		}
		inv.Mul(&pts[j].Z)
		z2.SquareVal(&zInv)
		z3.Mul2(&z2, &zInv)
		pts[j].X.Mul(&z2).Normalize()
		pts[j].Y.Mul(&z3).Normalize()
		pts[j].Z.SetInt(1)
	}
}
