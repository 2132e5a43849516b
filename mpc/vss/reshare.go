package vss

import (
	"fmt"
	"io"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// Resharing math for refresh, reshare and repair (DESIGN §4a).
//
// Refresh: every party deals a sharing of zero, g(z) = a_1 z + … + a_{t−1}
// z^{t−1}, committing only C_1..C_{t−1} (C_0 would be the point at
// infinity); the new share is the old one plus every dealt share, the key
// stays f(0) + Σ g_i(0) = f(0).
//
// Reshare: dealer i of a dealer set D (|D| ≥ t old holders) deals a fresh
// degree-(t'−1) sharing h_i of its Lagrange-weighted share λ_i·s_i, with
// C_{i,0} = λ_i·P_i checkable against its old public share P_i; the new
// share of party j is Σ_i h_i(j+1) and the key Σ λ_i·P_i = Q is unchanged.
//
// Secret values go through ModNScalar and secp only, as in vss.go; the
// checks work on public points and may be variable time.

// DealZero deals a t-of-n sharing of zero with fresh coefficients from rand
// (crypto/rand when nil). The Dealing's Commitments are C_1..C_{t−1} (t−1
// points; none when t = 1, where every share is zero). The caller zeroes the
// Dealing.
func DealZero(t, n int, rand io.Reader) (*Dealing, error) {
	if err := checkParams(t, n); err != nil {
		return nil, err
	}
	var one btcec.ModNScalar
	one.SetInt(1)
	// A polynomial with constant term 1 gives the random a_1..a_{t−1}; the
	// constant is then cleared for evaluation (it is never committed).
	p, err := NewPolynomial(&one, t, rand)
	if err != nil {
		return nil, err
	}
	defer p.Zero()
	p.coeffs[0].Zero()
	d := &Dealing{Commitments: make(Commitments, 0, t-1), Shares: make([]btcec.ModNScalar, n)}
	for k := 1; k < t; k++ {
		var r btcec.JacobianPoint
		secp.ScalarBaseMult(&p.coeffs[k], &r)
		r.ToAffine()
		d.Commitments = append(d.Commitments, btcec.NewPublicKey(&r.X, &r.Y))
	}
	for id := range n {
		if err := p.Evaluate(id, &d.Shares[id]); err != nil {
			d.Zero()
			return nil, err
		}
	}
	return d, nil
}

// ParseZeroCommitments decodes the t−1 commitments C_1..C_{t−1} of a
// sharing of zero.
func ParseZeroCommitments(raw [][]byte, t int) (Commitments, error) {
	if t < 1 || t > MaxParticipants {
		return nil, fmt.Errorf("%w: t=%d", ErrInvalidParameters, t)
	}
	if t == 1 {
		if len(raw) != 0 {
			return nil, fmt.Errorf("%w: %d commitments for a 1-of-n sharing of zero", ErrInvalidCommitment, len(raw))
		}
		return Commitments{}, nil
	}
	return ParseCommitments(raw, t-1)
}

// evalZero sets r = Σ_{k≥1} C_k x^k for zero-sharing commitments c =
// C_1..C_{t−1}; infinity when c is empty. Public data.
func evalZero(c Commitments, x uint32, r *btcec.JacobianPoint) {
	if len(c) == 0 {
		*r = btcec.JacobianPoint{}
		return
	}
	evalCommitments(c, x, r)
	mulSmall(r, x, r)
}

// VerifyZeroShare checks share·G == Σ_{k≥1} C_k (id+1)^k for a sharing of
// zero (c = C_1..C_{t−1}). A zero share is valid here (t = 1, or chance).
// share·G is constant time; a mismatch is a *ShareError for id.
func VerifyZeroShare(c Commitments, id int, share *btcec.ModNScalar) error {
	for k, p := range c {
		if p == nil || !p.IsOnCurve() {
			return fmt.Errorf("%w: commitment %d", ErrInvalidCommitment, k+1)
		}
	}
	if id < 0 || id >= MaxParticipants {
		return fmt.Errorf("%w: %d", ErrInvalidID, id)
	}
	if share == nil {
		return &ShareError{ID: id, Err: ErrInvalidShare}
	}
	var lhs, rhs btcec.JacobianPoint
	secp.ScalarBaseMult(share, &lhs)
	evalZero(c, uint32(id)+1, &rhs)
	if !equivalent(&lhs, &rhs) {
		return &ShareError{ID: id, Err: ErrInvalidShare}
	}
	return nil
}

// equivalent compares two points that may be at infinity.
func equivalent(a, b *btcec.JacobianPoint) bool {
	ia, ib := isInfinity(a), isInfinity(b)
	if ia || ib {
		return ia == ib
	}
	a.X.Normalize()
	a.Y.Normalize()
	a.Z.Normalize()
	return a.EquivalentNonConst(b)
}

// RefreshedPublicShares returns P'_j = P_j + Σ_i Σ_{k≥1} C_{i,k} (j+1)^k,
// the public shares after adding every dealer's sharing of zero (dealings
// holds each dealer's C_1..C_{t−1}). The result is checked to be a
// degree-(t−1) sharing of the same key q.
func RefreshedPublicShares(old []*btcec.PublicKey, t int, q *btcec.PublicKey, dealings []Commitments) ([]*btcec.PublicKey, error) {
	n := len(old)
	if err := checkParams(t, n); err != nil {
		return nil, err
	}
	pts := make([]btcec.JacobianPoint, n)
	for j, p := range old {
		if p == nil || !p.IsOnCurve() {
			return nil, &ShareError{ID: j, Err: ErrInvalidPublicShare}
		}
		p.AsJacobian(&pts[j])
	}
	// By linearity Σ_i g_i(x) is the polynomial of the summed commitments:
	// one evaluation at 1..n instead of one per dealer.
	sum := make([]btcec.JacobianPoint, t) // sum[0] = ∞: sharings of zero
	for i, c := range dealings {
		if len(c) != t-1 {
			return nil, fmt.Errorf("%w: dealer %d: %d commitments for t=%d", ErrInvalidCommitment, i, len(c), t)
		}
		addCommitments(sum[1:], c)
	}
	for j, d := range evalRange(sum, n) {
		btcec.AddNonConst(&pts[j], &d, &pts[j])
	}
	return finish(pts, t, q)
}

// addCommitments adds c to sum coefficient-wise. Public data.
func addCommitments(sum []btcec.JacobianPoint, c Commitments) {
	var p btcec.JacobianPoint
	for k := range c {
		c[k].AsJacobian(&p)
		btcec.AddNonConst(&sum[k], &p, &sum[k])
	}
}

// finish turns summed public shares into keys and checks that they are a
// degree-(t−1) sharing of q.
func finish(pts []btcec.JacobianPoint, t int, q *btcec.PublicKey) ([]*btcec.PublicKey, error) {
	for j := range pts {
		if isInfinity(&pts[j]) {
			return nil, &ShareError{ID: j, Err: ErrZeroShare}
		}
	}
	out := toPublicKeys(pts)
	if err := CheckPublicShares(out, t, q); err != nil {
		return nil, err
	}
	return out, nil
}

// DealSubShares is a reshare dealer's step: a fresh t'-of-n' sharing of
// λ·share (λ = Lagrange(dealers, id) of the old key). Constant time in
// share; the weighted secret is zeroed before returning. The caller zeroes
// the Dealing.
func DealSubShares(share, lambda *btcec.ModNScalar, t, n int, rand io.Reader) (*Dealing, error) {
	var w btcec.ModNScalar
	w.Mul2(share, lambda)
	defer w.Zero()
	return Deal(&w, t, n, rand)
}

// CheckSubDealing checks a reshare dealer's C_0 against its old public
// share: C_0 == λ·P_old. Public data (variable time).
func CheckSubDealing(c Commitments, lambda *btcec.ModNScalar, oldPub *btcec.PublicKey) error {
	if err := c.validate(); err != nil {
		return err
	}
	if oldPub == nil || !oldPub.IsOnCurve() {
		return fmt.Errorf("%w: old public share", ErrInvalidPublicShare)
	}
	var p, want btcec.JacobianPoint
	oldPub.AsJacobian(&p)
	btcec.ScalarMultNonConst(lambda, &p, &want)
	var c0 btcec.JacobianPoint
	c[0].AsJacobian(&c0)
	if !equivalent(&want, &c0) {
		return ErrSubDealing
	}
	return nil
}

// ResharedPublicShares returns P'_j = Σ_i H_i(j+1) for n' new parties from
// every dealer's commitments (each of t' points), checked to be a
// degree-(t'−1) sharing of q.
func ResharedPublicShares(dealings []Commitments, t, n int, q *btcec.PublicKey) ([]*btcec.PublicKey, error) {
	if err := checkParams(t, n); err != nil {
		return nil, err
	}
	if len(dealings) == 0 {
		return nil, fmt.Errorf("%w: no dealings", ErrInvalidParameters)
	}
	// Σ_i H_i is the polynomial of the summed commitments (linearity).
	sum := make([]btcec.JacobianPoint, t)
	for i, c := range dealings {
		if len(c) != t {
			return nil, fmt.Errorf("%w: dealer %d: %d commitments for t=%d", ErrInvalidCommitment, i, len(c), t)
		}
		if err := c.validate(); err != nil {
			return nil, err
		}
		addCommitments(sum, c)
	}
	return finish(evalRange(sum, n), t, q)
}
