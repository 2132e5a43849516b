package vss

import (
	"errors"
	"fmt"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// TestMSM: msm against the sum of btcec's scalar multiplications, for random
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
		got := msm(points, scalars)
		if !equivalent(&got, &want) {
			t.Fatalf("%d points: msm differs from the sum of products", size)
		}
	}
}

// TestVerifyPublicShares: honest public shares pass on both paths (computed
// for small t, a random combination for large t); one wrong share, two
// swapped (distinct unless t = 1), another polynomial's shares or a missing
// one are refused.
func TestVerifyPublicShares(t *testing.T) {
	for _, s := range []struct{ t, n int }{{1, 3}, {2, 3}, {7, 10}, {40, 60}, {67, 100}} {
		t.Run(fmt.Sprintf("%d-of-%d", s.t, s.n), func(t *testing.T) {
			d, err := Deal(randScalar(t), s.t, s.n, nil)
			if err != nil {
				t.Fatal(err)
			}
			d.Zero()
			pubs, err := PublicShares(d.Commitments, s.n)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyPublicShares(d.Commitments, pubs); err != nil {
				t.Fatalf("honest shares: %v", err)
			}
			bad := append([]*btcec.PublicKey(nil), pubs...)
			var p, g btcec.JacobianPoint
			bad[s.n-1].AsJacobian(&p)
			btcec.Generator().AsJacobian(&g)
			btcec.AddNonConst(&p, &g, &p)
			p.ToAffine()
			bad[s.n-1] = btcec.NewPublicKey(&p.X, &p.Y)
			if err := VerifyPublicShares(d.Commitments, bad); !errors.Is(err, ErrInconsistentPublicShares) {
				t.Fatalf("a wrong share: %v", err)
			}
			swapped := append([]*btcec.PublicKey(nil), pubs...)
			swapped[0], swapped[1] = swapped[1], swapped[0]
			if err := VerifyPublicShares(d.Commitments, swapped); s.t > 1 && !errors.Is(err, ErrInconsistentPublicShares) {
				t.Fatalf("swapped shares: %v", err)
			}
			other, err := Deal(randScalar(t), s.t, s.n, nil)
			if err != nil {
				t.Fatal(err)
			}
			other.Zero()
			if err := VerifyPublicShares(other.Commitments, pubs); !errors.Is(err, ErrInconsistentPublicShares) {
				t.Fatalf("another polynomial's shares: %v", err)
			}
			missing := append([]*btcec.PublicKey(nil), pubs...)
			missing[1] = nil
			wantShareError(t, VerifyPublicShares(d.Commitments, missing), 1, ErrInvalidPublicShare)
		})
	}
}

func BenchmarkVerifyPublicShares(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", s.t, s.n), func(b *testing.B) {
			d, err := Deal(randScalar(b), s.t, s.n, nil)
			if err != nil {
				b.Fatal(err)
			}
			d.Zero()
			pubs, _ := PublicShares(d.Commitments, s.n)
			for b.Loop() {
				if err := VerifyPublicShares(d.Commitments, pubs); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
