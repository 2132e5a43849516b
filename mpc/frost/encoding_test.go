package frost

import (
	"crypto/rand"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// TestMulPublicMatchesBtcec: mulPublic (libsecp256k1) equals btcec's
// ScalarMultNonConst for affine and non-affine Jacobian inputs, and maps a
// zero scalar or the point at infinity to infinity.
func TestMulPublicMatchesBtcec(t *testing.T) {
	randScalar := func() btcec.ModNScalar {
		var b [32]byte
		rand.Read(b[:])
		var k btcec.ModNScalar
		k.SetBytes(&b)
		return k
	}
	for i := range 500 {
		k, a, c := randScalar(), randScalar(), randScalar()
		var p, q, sum btcec.JacobianPoint
		btcec.ScalarBaseMultNonConst(&a, &p)
		btcec.ScalarBaseMultNonConst(&c, &q)
		btcec.AddNonConst(&p, &q, &sum) // Z ≠ 1
		for _, in := range []btcec.JacobianPoint{p, sum} {
			var want btcec.JacobianPoint
			btcec.ScalarMultNonConst(&k, &in, &want)
			want.ToAffine()
			got := mulPublic(&k, &in)
			if !jacobianEqual(&got, &want) {
				t.Fatalf("#%d: mulPublic differs from btcec", i)
			}
		}
	}
	var zero btcec.ModNScalar
	var one btcec.ModNScalar
	one.SetInt(1)
	var g, inf btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(&one, &g)
	if r := mulPublic(&zero, &g); !isInfinity(&r) {
		t.Error("0·G is not infinity")
	}
	if r := mulPublic(&one, &inf); !isInfinity(&r) {
		t.Error("1·∞ is not infinity")
	}
}

// TestMulPublicFallback: a point libsecp256k1 refuses (off the curve; no
// caller passes one, points are parsed first) still gets btcec's answer, so
// mulPublic stays total and agrees with what it replaced.
func TestMulPublicFallback(t *testing.T) {
	var k, one btcec.ModNScalar
	k.SetInt(7)
	one.SetInt(1)
	var g btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(&one, &g)
	g.ToAffine()
	off := g
	off.Y.AddInt(1).Normalize() // (Gx, Gy+1) is not on the curve
	var want btcec.JacobianPoint
	btcec.ScalarMultNonConst(&k, &off, &want)
	got := mulPublic(&k, &off)
	if got.X != want.X || got.Y != want.Y || got.Z != want.Z {
		t.Fatal("fallback differs from btcec")
	}
}
