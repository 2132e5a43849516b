package vss

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/dudect"
)

// TestRefreshMath: n parties each deal a sharing of zero; every share
// verifies, the refreshed shares still interpolate to x from any t of them,
// their public shares match RefreshedPublicShares, and they differ from
// the old shares (for t > 1).
func TestRefreshMath(t *testing.T) {
	for _, tn := range [][2]int{{1, 1}, {1, 3}, {2, 3}, {3, 5}, {7, 10}} {
		th, n := tn[0], tn[1]
		x := randScalar(t)
		d, err := Deal(x, th, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		oldPubs, err := PublicShares(d.Commitments, n)
		if err != nil {
			t.Fatal(err)
		}
		newShares := append([]btcec.ModNScalar(nil), d.Shares...)
		var dealt []Commitments
		for range n {
			z, err := DealZero(th, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(z.Commitments) != th-1 {
				t.Fatalf("%d-of-%d: %d zero commitments", th, n, len(z.Commitments))
			}
			for j := range n {
				if err := VerifyZeroShare(z.Commitments, j, &z.Shares[j]); err != nil {
					t.Fatalf("%d-of-%d: zero share %d: %v", th, n, j, err)
				}
				newShares[j].Add(&z.Shares[j])
			}
			dealt = append(dealt, z.Commitments)
		}
		pubs, err := RefreshedPublicShares(oldPubs, th, d.Commitments[0], dealt)
		if err != nil {
			t.Fatalf("%d-of-%d: %v", th, n, err)
		}
		for j := range n {
			if !pubs[j].IsEqual(pubOf(&newShares[j])) {
				t.Fatalf("%d-of-%d: public share %d does not match the refreshed share", th, n, j)
			}
			if th > 1 && newShares[j].Equals(&d.Shares[j]) {
				t.Fatalf("%d-of-%d: share %d unchanged", th, n, j)
			}
		}
		ids := rand.Perm(n)[:th]
		if got := interpolate(t, ids, newShares); !got.Equals(x) {
			t.Fatalf("%d-of-%d: refreshed shares interpolate to another key", th, n)
		}
	}
}

func TestVerifyZeroShareRejects(t *testing.T) {
	z, err := DealZero(3, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	var bad btcec.ModNScalar
	bad.Set(&z.Shares[1]).Add(new(btcec.ModNScalar).SetInt(1))
	wantShareError(t, VerifyZeroShare(z.Commitments, 1, &bad), 1, ErrInvalidShare)
	wantShareError(t, VerifyZeroShare(z.Commitments, 2, &z.Shares[1]), 2, ErrInvalidShare)
	// A nonzero share against no commitments (t = 1: every share is zero).
	wantShareError(t, VerifyZeroShare(nil, 0, &z.Shares[0]), 0, ErrInvalidShare)
	if _, err := ParseZeroCommitments([][]byte{z.Commitments[0].SerializeCompressed()}, 3); !errors.Is(err, ErrInvalidCommitment) {
		t.Fatalf("one commitment for t=3: %v", err)
	}
	if _, err := ParseZeroCommitments(z.Commitments.Serialize(), 3); err != nil {
		t.Fatal(err)
	}
}

// TestReshareMath: random (t, n) → (t', n') up to 7-of-10 with a random
// dealer set of at least t old holders: every sub-dealing checks against
// its dealer's old public share, the new shares verify, any t' of them
// interpolate to x, and the public shares match.
func TestReshareMath(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 25 {
		n := 1 + rng.IntN(10)
		th := 1 + rng.IntN(min(n, 7))
		n2 := 1 + rng.IntN(10)
		t2 := 1 + rng.IntN(min(n2, 7))
		x := randScalar(t)
		d, err := Deal(x, th, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		oldPubs, _ := PublicShares(d.Commitments, n)
		dealers := rng.Perm(n)[:th+rng.IntN(n-th+1)]
		newShares := make([]btcec.ModNScalar, n2)
		var dealt []Commitments
		for _, i := range dealers {
			l, err := Lagrange(dealers, i)
			if err != nil {
				t.Fatal(err)
			}
			sd, err := DealSubShares(&d.Shares[i], l, t2, n2, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := CheckSubDealing(sd.Commitments, l, oldPubs[i]); err != nil {
				t.Fatalf("dealer %d: %v", i, err)
			}
			// Checked against another dealer's public share, it fails.
			if th > 1 && len(dealers) > 1 { // (t = 1: every share is x)
				other := dealers[0]
				if other == i {
					other = dealers[1]
				}
				if err := CheckSubDealing(sd.Commitments, l, oldPubs[other]); !errors.Is(err, ErrSubDealing) {
					t.Fatalf("dealer %d checked against %d: %v", i, other, err)
				}
			}
			for j := range n2 {
				if err := VerifyShare(sd.Commitments, j, &sd.Shares[j]); err != nil {
					t.Fatal(err)
				}
				newShares[j].Add(&sd.Shares[j])
			}
			dealt = append(dealt, sd.Commitments)
		}
		pubs, err := ResharedPublicShares(dealt, t2, n2, d.Commitments[0])
		if err != nil {
			t.Fatalf("%d-of-%d → %d-of-%d: %v", th, n, t2, n2, err)
		}
		for j := range n2 {
			if !pubs[j].IsEqual(pubOf(&newShares[j])) {
				t.Fatalf("public share %d mismatch", j)
			}
		}
		if got := interpolate(t, rng.Perm(n2)[:t2], newShares); !got.Equals(x) {
			t.Fatalf("%d-of-%d → %d-of-%d: new shares interpolate to another key", th, n, t2, n2)
		}
		// Fewer than t dealers share another key: the check catches it.
		if th > 1 {
			few := dealers[:th-1]
			var sub []Commitments
			for _, i := range few {
				l, _ := Lagrange(few, i)
				sd, _ := DealSubShares(&d.Shares[i], l, t2, n2, nil)
				sub = append(sub, sd.Commitments)
			}
			if _, err := ResharedPublicShares(sub, t2, n2, d.Commitments[0]); !errors.Is(err, ErrThresholdKeyMismatch) {
				t.Fatalf("%d of %d dealers: %v", th-1, th, err)
			}
		}
	}
}

func BenchmarkDealZero7of10(b *testing.B) {
	for b.Loop() {
		d, err := DealZero(7, 10, nil)
		if err != nil {
			b.Fatal(err)
		}
		d.Zero()
	}
}

// TestDealSubSharesConstantTime: a reshare dealer's weighting and dealing
// take the same time for a fixed share (1) as for random ones.
func TestDealSubSharesConstantTime(t *testing.T) {
	const th, n = 3, 5
	l, err := Lagrange([]int{0, 1, 2}, 1)
	if err != nil {
		t.Fatal(err)
	}
	fixed := new(btcec.ModNScalar).SetInt(1)
	dudect.Test(t, func() *btcec.ModNScalar { return new(btcec.ModNScalar).Set(fixed) }, func() *btcec.ModNScalar { return randScalar(t) },
		func(s *btcec.ModNScalar) {
			d, err := DealSubShares(s, l, th, n, nil)
			if err != nil {
				panic(err)
			}
			d.Zero()
		})
}
