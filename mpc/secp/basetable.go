package secp

import (
	"encoding/binary"
	"math/bits"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
)

// ScalarBaseMult reads the scalar as signed 6-bit windows (Booth-style
// recoding): digits in [−32, 32], so a window's table holds 0..32 and a
// negative digit negates y. 43 additions instead of 64 for 4-bit unsigned
// windows, at a scan of 33 entries instead of 16.
const (
	baseW       = 6
	windows     = (256 + baseW - 1) / baseW // 43; the top one is at most 16 + carry
	baseEntries = 1<<(baseW-1) + 1          // 0..32
)

// baseWindow holds the affine (x, y) of j·64^w·G for j = 0..32 of one
// window w; entry 0 stores (0, 1) so that with Z = 0 it is the projective
// infinity.
type baseWindow [baseEntries][2]packedFE

// baseTable returns the 43 per-window tables of multiples of G (about
// 88 KiB), built on first use. The table is public data; only the scans are
// secret dependent, and they read every entry.
var baseTable = sync.OnceValue(buildBaseTable)

// buildBaseTable computes the base tables with the same complete formulas
// (public data, so its timing does not matter).
func buildBaseTable() *[windows]baseWindow {
	tab := new([windows]baseWindow)
	var g btcec.JacobianPoint
	btcec.GeneratorJacobian(&g)
	var step, cur projective // step = 64^w·G
	step.fromJacobian(&g)
	var aff btcec.JacobianPoint
	var one btcec.FieldVal
	one.SetInt(1)
	for w := range tab {
		tab[w][0][0].pack(new(btcec.FieldVal))
		tab[w][0][1].pack(&one)
		cur.setInfinity()
		for j := 1; j < len(tab[w]); j++ {
			cur.add(&cur, &step)
			cur.toAffine(&aff)
			tab[w][j][0].pack(&aff.X)
			tab[w][j][1].pack(&aff.Y)
		}
		step.double(&cur) // 2·32·64^w·G = 64^(w+1)·G
	}
	return tab
}

// signedDigits recodes k (32 big-endian bytes) into windows digits d_w in
// [−32, 32] with k = Σ d_w·64^w, as magnitudes and sign bits. Constant
// time: the bit positions are public, the carry is arithmetic.
func signedDigits(kb *[32]byte, mag, neg *[windows]uint8) {
	var limbs [5]uint64 // little-endian, one spare so a window may straddle
	for i := range 4 {
		limbs[i] = binary.BigEndian.Uint64(kb[32-8*(i+1):])
	}
	var carry uint32
	for w := range windows {
		pos := baseW * w
		i, sh := pos/64, uint(pos%64)
		v := uint32((limbs[i]>>sh|limbs[i+1]<<(64-sh))&(1<<baseW-1)) + carry
		// v in 0..64: above 32 it becomes v − 64 with a carry into the next.
		carry = (1<<(baseW-1) - v) >> 31
		m := -carry
		mag[w] = uint8(v ^ ((v ^ (1<<baseW - v)) & m))
		neg[w] = uint8(carry)
	}
	clear(limbs[:])
}

// fieldP is the field prime as packed big-endian words.
var fieldP = packedFE{0xffffffffffffffff, 0xffffffffffffffff, 0xffffffffffffffff, 0xfffffffefffffc2f}

// lookup sets r = ±d·64^w·G for this window (minus when neg is 1), as
// (x : y : 1), or infinity for d = 0. Constant time in d and neg: all 33
// entries are read under masks, y is negated as p − y on the packed words
// and chosen under a mask, and Z is derived from d arithmetically.
func (t *baseWindow) lookup(d, neg uint8, r *projective) {
	var acc [2]packedFE
	for j := range t {
		m := eqMask(uint8(j), d)
		for c := range acc {
			for w := range acc[c] {
				acc[c][w] |= t[j][c][w] & m
			}
		}
	}
	// y ≠ 0 on the curve (and 1 for the infinity entry), so p − y is the
	// normalized −y.
	var ny packedFE
	var borrow uint64
	for w := len(ny) - 1; w >= 0; w-- {
		ny[w], borrow = bits.Sub64(fieldP[w], acc[1][w], borrow)
	}
	m := -uint64(neg & 1)
	for w := range ny {
		acc[1][w] = acc[1][w]&^m | ny[w]&m
	}
	acc[0].unpack(&r.x)
	acc[1].unpack(&r.y)
	// nonzero = 1 iff d != 0: for d < 256, −d has bit 31 set exactly when d ≠ 0.
	nonzero := uint16((-uint32(d)) >> 31)
	r.z.SetInt(nonzero)
	clear(acc[:])
	clear(ny[:])
}
