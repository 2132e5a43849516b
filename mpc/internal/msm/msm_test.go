package msm

import (
	"crypto/rand"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

func randScalar(t *testing.T) *btcec.ModNScalar {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	var s btcec.ModNScalar
	s.SetBytes(&b)
	return &s
}

func pubOf(s *btcec.ModNScalar) *btcec.PublicKey { return btcec.PrivKeyFromScalar(s).PubKey() }

// equivalent compares two Jacobian points as affine points (public data).
func equivalent(a, b *btcec.JacobianPoint) bool {
	x, y := *a, *b
	x.ToAffine()
	y.ToAffine()
	return x.X.Equals(&y.X) && x.Y.Equals(&y.Y) && x.Z.Equals(&y.Z)
}

// TestMSM: Sum against the sum of btcec's scalar multiplications, for random
// full-size scalars, small ones, n−1 and zero.
func TestMSM(t *testing.T) {
	for _, size := range []int{1, 2, 5, 40} {
		points := make([]btcec.JacobianPoint, size)
		scalars := make([]btcec.ModNScalar, size)
		var want btcec.JacobianPoint
		for i := range size {
			pubOf(randScalar(t)).AsJacobian(&points[i])
			switch i % 4 {
			case 0:
				scalars[i] = *randScalar(t)
			case 1:
				scalars[i].SetInt(uint32(i * 977))
			case 2:
				scalars[i].SetInt(1).Negate() // n − 1: the longest digit string
			}
			var term btcec.JacobianPoint
			btcec.ScalarMultNonConst(&scalars[i], &points[i], &term)
			btcec.AddNonConst(&want, &term, &want)
		}
		got := Sum(points, scalars)
		if !equivalent(&got, &want) {
			t.Fatalf("%d points: Sum differs from the sum of products", size)
		}
	}
}
