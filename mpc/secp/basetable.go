package secp

import (
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
)

// windows is the number of 4-bit windows in a 256-bit scalar.
const windows = 64

// baseWindow holds the affine (x, y) of j·16^w·G for j = 0..15 of one window
// w; entry 0 stores (0, 1) so that with Z = 0 it is the projective infinity.
type baseWindow [16][2]packedFE

// baseTable returns the 64 per-window tables of multiples of G (64 KiB),
// built on first use. The table is public data; only the scans are secret
// dependent, and they read every entry.
var baseTable = sync.OnceValue(buildBaseTable)

// buildBaseTable computes the base tables with the same complete formulas
// (public data, so its timing does not matter).
func buildBaseTable() *[windows]baseWindow {
	tab := new([windows]baseWindow)
	var g btcec.JacobianPoint
	btcec.GeneratorJacobian(&g)
	var step, cur projective // step = 16^w·G
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
		step.add(&cur, &step) // 16·16^w·G
	}
	return tab
}

// lookup sets r = d·16^w·G for this window, as (x : y : 1), or (0:1:0) for
// d = 0. Constant time in d: all 16 entries are read under masks and Z is
// derived from d arithmetically.
func (t *baseWindow) lookup(d uint8, r *projective) {
	var acc [2]packedFE
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
	// nonzero = 1 iff d != 0: for d < 256, −d has bit 31 set exactly when d ≠ 0.
	nonzero := uint16((-uint32(d)) >> 31)
	r.z.SetInt(nonzero)
	clear(acc[:])
}
