package secp

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/dudect"
)

// The timing tests compare a fixed secret scalar (class 0) with fresh random
// ones (class 1). Each input is a fresh allocation so both classes are spread
// over memory alike. They run without -race (`make test` and `make bench`).

func ctRandScalar() *btcec.ModNScalar {
	var b [32]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rand.Uint64())
	}
	k := new(btcec.ModNScalar)
	k.SetBytes(&b)
	return k
}

func ctFixed(v uint32) func() *btcec.ModNScalar {
	return func() *btcec.ModNScalar { return new(btcec.ModNScalar).SetInt(v) }
}

// ctPoint is a public point shared by both classes.
func ctPoint() btcec.JacobianPoint {
	var p btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(ctRandScalar(), &p)
	p.ToAffine()
	return p
}

// fixedClasses: 1 (a single nonzero window, all other lookups hit entry 0)
// and 0 (the result is infinity, which must not take another path).
var fixedClasses = []struct {
	name string
	v    uint32
}{{"k=1", 1}, {"k=0", 0}}

func TestConstantTimeScalarBaseMult(t *testing.T) { timeBaseMult(t, ScalarBaseMult) }
func TestConstantTimeScalarMult(t *testing.T)     { timeMult(t, ScalarMult) }

// ECDH is only timed with k = 1: k = 0 returns an error by design (the one
// documented branch, on the output).
func TestConstantTimeECDH(t *testing.T) { timeECDH(t, ECDH) }

// timeBaseMult, timeMult and timeECDH time one implementation (the package's,
// or the pure-Go reference) of each secret operation over the fixed classes.
func timeBaseMult(t *testing.T, f func(*btcec.ModNScalar, *btcec.JacobianPoint)) {
	baseTable()
	var out btcec.JacobianPoint
	for _, fc := range fixedClasses {
		t.Run(fc.name, func(t *testing.T) {
			dudect.Test(t, ctFixed(fc.v), ctRandScalar, func(k *btcec.ModNScalar) { f(k, &out) })
		})
	}
}

func timeMult(t *testing.T, f func(*btcec.ModNScalar, *btcec.JacobianPoint, *btcec.JacobianPoint)) {
	p := ctPoint()
	var out btcec.JacobianPoint
	for _, fc := range fixedClasses {
		t.Run(fc.name, func(t *testing.T) {
			dudect.Test(t, ctFixed(fc.v), ctRandScalar, func(k *btcec.ModNScalar) { f(k, &p, &out) })
		})
	}
}

func timeECDH(t *testing.T, f func(*btcec.ModNScalar, *btcec.PublicKey) ([32]byte, error)) {
	p := ctPoint()
	pub := btcec.NewPublicKey(&p.X, &p.Y)
	var sink [32]byte
	dudect.Test(t, ctFixed(1), ctRandScalar, func(k *btcec.ModNScalar) {
		out, err := f(k, pub)
		if err != nil {
			panic("ECDH failed on a nonzero scalar")
		}
		sink = out
	})
	_ = sink
}

// TestConstantTimeHarnessFlagsNonConst shows that the same harness and
// classes flag btcec's variable-time base multiplication, so the tests above
// can fail.
func TestConstantTimeHarnessFlagsNonConst(t *testing.T) {
	var out btcec.JacobianPoint
	dudect.ExpectLeak(t, ctFixed(1), ctRandScalar, func(k *btcec.ModNScalar) {
		btcec.ScalarBaseMultNonConst(k, &out)
	})
}
