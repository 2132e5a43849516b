// Package vss implements Feldman verifiable secret sharing of an existing
// secp256k1 private key for quorumd's import ceremony (DESIGN §3).
//
// The importer samples f(z) = x + a_1 z + … + a_{t−1} z^{t−1}, publishes the
// commitments C_k = a_k·G (C_0 = x·G is the threshold key) and gives BIP445
// participant id (0-based) the share f(id+1). A recipient checks its share
// against the commitments (VerifyShare, or VerifySharePublic against its
// public share), derives every public share (PublicShares) or checks ones
// the dealer published (VerifyPublicShares, one multi-scalar multiplication
// in msm.go), and anyone can check that a set of public shares is a valid
// degree-(t−1) sharing of a given key (CheckPublicShares).
//
// Constant-time rule: secret values (x, the coefficients a_k, the shares) are
// handled only with btcec/dcrd ModNScalar arithmetic (Mul, Add: constant time)
// and multiplied by G only through mpc/secp.ScalarBaseMult. Everything that
// works on commitments, public shares and ids is public and uses dcrd's faster
// variable-time point operations.
//
// Size limit: n ≤ MaxParticipants. PublicShares, VerifyPublicShares and
// CheckPublicShares cost O(n·t) point operations on data that may come from an untrusted party, so
// the bound caps the work an attacker can cause (well under a second at the
// maximum).
package vss

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/bits"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/secp"
)

// MaxParticipants is the largest n this package accepts; see the package doc.
const MaxParticipants = 256

// checkParams validates 1 ≤ t ≤ n ≤ MaxParticipants.
func checkParams(t, n int) error {
	if t < 1 || t > n || n > MaxParticipants {
		return fmt.Errorf("%w: t=%d n=%d (need 1 ≤ t ≤ n ≤ %d)", ErrInvalidParameters, t, n, MaxParticipants)
	}
	return nil
}

// Commitments are the Feldman commitments C_0..C_{t−1}; C_k commits to the
// coefficient of z^k and C_0 is the threshold public key.
type Commitments []*btcec.PublicKey

// ParseCommitments decodes exactly t 33-byte compressed points; any other
// count, encoding or an off-curve point is rejected.
func ParseCommitments(raw [][]byte, t int) (Commitments, error) {
	if t < 1 || t > MaxParticipants {
		return nil, fmt.Errorf("%w: t=%d", ErrInvalidParameters, t)
	}
	if len(raw) != t {
		return nil, fmt.Errorf("%w: %d commitments for t=%d", ErrInvalidCommitment, len(raw), t)
	}
	c := make(Commitments, t)
	for k, b := range raw {
		if len(b) != btcec.PubKeyBytesLenCompressed {
			return nil, fmt.Errorf("%w: commitment %d: length %d", ErrInvalidCommitment, k, len(b))
		}
		p, err := btcec.ParsePubKey(b)
		if err != nil {
			return nil, fmt.Errorf("%w: commitment %d: %w", ErrInvalidCommitment, k, err)
		}
		c[k] = p
	}
	return c, nil
}

// Serialize returns the 33-byte compressed encodings of the commitments.
func (c Commitments) Serialize() [][]byte {
	out := make([][]byte, len(c))
	for k, p := range c {
		out[k] = p.SerializeCompressed()
	}
	return out
}

// validate checks that c is a usable commitment vector (1..MaxParticipants
// points, none missing or off the curve).
func (c Commitments) validate() error {
	if len(c) < 1 || len(c) > MaxParticipants {
		return fmt.Errorf("%w: %d commitments", ErrInvalidParameters, len(c))
	}
	for k, p := range c {
		if p == nil || !p.IsOnCurve() {
			return fmt.Errorf("%w: commitment %d", ErrInvalidCommitment, k)
		}
	}
	return nil
}

// ThresholdKey returns the threshold public key Q = C_0.
func ThresholdKey(c Commitments) (*btcec.PublicKey, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c[0], nil
}

// Polynomial is a secret sharing polynomial. It holds secrets: call Zero when
// done with it.
type Polynomial struct {
	coeffs []btcec.ModNScalar // coeffs[k] multiplies z^k; coeffs[0] is the secret
}

// randomScalar reads a uniform scalar in [1, n) from r by rejection sampling.
// The rejection test only depends on discarded samples.
func randomScalar(r io.Reader, out *btcec.ModNScalar) error {
	var b [32]byte
	defer clear(b[:])
	// An honest source is rejected with probability ~2^-128 per draw; a
	// source that keeps failing is broken.
	for range 64 {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("%w: %w", ErrRandomness, err)
		}
		if out.SetBytes(&b)|out.IsZeroBit() == 0 {
			return nil
		}
	}
	out.Zero()
	return fmt.Errorf("%w: no scalar in range after 64 draws", ErrRandomness)
}

// NewPolynomial returns a random polynomial of degree t−1 with constant term x
// and coefficients a_1..a_{t−1} drawn uniformly from [1, n) using rand
// (crypto/rand when nil). x is copied; the caller zeroes its own copy.
func NewPolynomial(x *btcec.ModNScalar, t int, rand io.Reader) (*Polynomial, error) {
	if t < 1 || t > MaxParticipants {
		return nil, fmt.Errorf("%w: t=%d", ErrInvalidParameters, t)
	}
	if x == nil || x.IsZero() {
		return nil, fmt.Errorf("%w: secret", ErrInvalidCoefficient)
	}
	if rand == nil {
		rand = crand.Reader
	}
	p := &Polynomial{coeffs: make([]btcec.ModNScalar, t)}
	p.coeffs[0].Set(x)
	for k := 1; k < t; k++ {
		if err := randomScalar(rand, &p.coeffs[k]); err != nil {
			p.Zero()
			return nil, err
		}
	}
	return p, nil
}

// NewPolynomialFromCoefficients returns the polynomial Σ coeffs[k]·z^k
// (coeffs[0] is the secret). The values are copied; the caller zeroes its
// own. Every coefficient must be non-zero so that its commitment has an
// encoding. Used to reproduce deterministic dealers such as BIP445's.
func NewPolynomialFromCoefficients(coeffs []*btcec.ModNScalar) (*Polynomial, error) {
	t := len(coeffs)
	if t < 1 || t > MaxParticipants {
		return nil, fmt.Errorf("%w: %d coefficients", ErrInvalidParameters, t)
	}
	p := &Polynomial{coeffs: make([]btcec.ModNScalar, t)}
	for k, c := range coeffs {
		// Only whether a coefficient is zero is revealed, never its value.
		if c == nil || c.IsZero() {
			p.Zero()
			return nil, fmt.Errorf("%w: coefficient %d", ErrInvalidCoefficient, k)
		}
		p.coeffs[k].Set(c)
	}
	return p, nil
}

// Threshold returns t, the number of coefficients.
func (p *Polynomial) Threshold() int { return len(p.coeffs) }

// Zero overwrites every coefficient and makes p unusable.
func (p *Polynomial) Zero() {
	for i := range p.coeffs {
		p.coeffs[i].Zero()
	}
	p.coeffs = nil
}

// Evaluate sets out = f(id+1), the share of participant id. Constant time in
// the coefficients: Horner's rule with ModNScalar Mul and Add only; the loop
// length depends on t and id is public.
func (p *Polynomial) Evaluate(id int, out *btcec.ModNScalar) error {
	if len(p.coeffs) == 0 {
		return fmt.Errorf("%w: polynomial has been zeroed", ErrInvalidParameters)
	}
	if id < 0 || id >= MaxParticipants {
		return fmt.Errorf("%w: %d", ErrInvalidID, id)
	}
	var x btcec.ModNScalar
	x.SetInt(uint32(id) + 1)
	t := len(p.coeffs)
	out.Set(&p.coeffs[t-1])
	for k := t - 2; k >= 0; k-- {
		out.Mul(&x).Add(&p.coeffs[k])
	}
	return nil
}

// Commitments returns C_k = a_k·G for every coefficient, computed with the
// constant-time secp.ScalarBaseMult.
func (p *Polynomial) Commitments() (Commitments, error) {
	if len(p.coeffs) == 0 {
		return nil, fmt.Errorf("%w: polynomial has been zeroed", ErrInvalidParameters)
	}
	c := make(Commitments, len(p.coeffs))
	for k := range p.coeffs {
		var r btcec.JacobianPoint
		secp.ScalarBaseMult(&p.coeffs[k], &r)
		if isInfinity(&r) { // zero coefficient: excluded at construction
			return nil, fmt.Errorf("%w: coefficient %d", ErrInvalidCoefficient, k)
		}
		r.ToAffine()
		c[k] = btcec.NewPublicKey(&r.X, &r.Y)
	}
	return c, nil
}

// Dealing is the importer's output: the public commitments and the secret
// shares. Call Zero once the shares have been sent.
type Dealing struct {
	Commitments Commitments
	// Shares[id] = f(id+1) for BIP445 ids 0..n−1. Secret.
	Shares []btcec.ModNScalar
}

// Zero overwrites every share.
func (d *Dealing) Zero() {
	for i := range d.Shares {
		d.Shares[i].Zero()
	}
	d.Shares = nil
}

// Deal computes the commitments and the shares for ids 0..n−1. Constant time
// in the coefficients (see Evaluate and Commitments) apart from rejecting a
// zero share, which happens with negligible probability for a random
// polynomial and reveals only that event.
func (p *Polynomial) Deal(n int) (*Dealing, error) {
	if err := checkParams(len(p.coeffs), n); err != nil {
		return nil, err
	}
	c, err := p.Commitments()
	if err != nil {
		return nil, err
	}
	d := &Dealing{Commitments: c, Shares: make([]btcec.ModNScalar, n)}
	for id := range n {
		if err := p.Evaluate(id, &d.Shares[id]); err != nil {
			d.Zero()
			return nil, err
		}
		if d.Shares[id].IsZero() {
			d.Zero()
			return nil, &ShareError{ID: id, Err: ErrZeroShare}
		}
	}
	return d, nil
}

// Deal splits x into a t-of-n Feldman sharing with fresh coefficients from
// rand (crypto/rand when nil). The coefficients are zeroed before returning;
// the caller zeroes x and, after use, the Dealing.
func Deal(x *btcec.ModNScalar, t, n int, rand io.Reader) (*Dealing, error) {
	if err := checkParams(t, n); err != nil {
		return nil, err
	}
	p, err := NewPolynomial(x, t, rand)
	if err != nil {
		return nil, err
	}
	defer p.Zero()
	return p.Deal(n)
}

// DealWithCoefficients deals from the given coefficients (coeffs[0] = x,
// coeffs[k] multiplies z^k), e.g. to reproduce BIP445's deterministic
// trusted dealer. The caller zeroes coeffs and, after use, the Dealing.
func DealWithCoefficients(coeffs []*btcec.ModNScalar, n int) (*Dealing, error) {
	if err := checkParams(len(coeffs), n); err != nil {
		return nil, err
	}
	p, err := NewPolynomialFromCoefficients(coeffs)
	if err != nil {
		return nil, err
	}
	defer p.Zero()
	return p.Deal(n)
}

func isInfinity(p *btcec.JacobianPoint) bool {
	return (p.X.IsZero() && p.Y.IsZero()) || p.Z.IsZero()
}

// mulSmall sets r = k·p by double-and-add; variable time, public data only.
// r may alias p.
func mulSmall(p *btcec.JacobianPoint, k uint32, r *btcec.JacobianPoint) {
	var base, acc btcec.JacobianPoint
	base.Set(p)
	for i := bits.Len32(k) - 1; i >= 0; i-- {
		btcec.DoubleNonConst(&acc, &acc)
		if k>>uint(i)&1 == 1 {
			btcec.AddNonConst(&acc, &base, &acc)
		}
	}
	r.Set(&acc)
}

// evalCommitments sets r = Σ C_k·x^k by Horner's rule in the exponent.
// Variable time, public data only.
func evalCommitments(c Commitments, x uint32, r *btcec.JacobianPoint) {
	var ck btcec.JacobianPoint
	c[len(c)-1].AsJacobian(r)
	for k := len(c) - 2; k >= 0; k-- {
		mulSmall(r, x, r)
		c[k].AsJacobian(&ck)
		btcec.AddNonConst(r, &ck, r)
	}
}

// VerifyShare checks share·G == Σ C_k (id+1)^k, i.e. that share is f(id+1)
// for the committed polynomial. share·G is computed in constant time through
// mpc/secp; the rest is public. A mismatch or a zero share is reported as a
// *ShareError for id. t is taken to be len(c): check the count against the
// agreed t when decoding (ParseCommitments does).
func VerifyShare(c Commitments, id int, share *btcec.ModNScalar) error {
	if err := c.validate(); err != nil {
		return err
	}
	if id < 0 || id >= MaxParticipants {
		return fmt.Errorf("%w: %d", ErrInvalidID, id)
	}
	if share == nil || share.IsZero() {
		return &ShareError{ID: id, Err: ErrZeroShare}
	}
	var lhs, rhs btcec.JacobianPoint
	secp.ScalarBaseMult(share, &lhs)
	lhs.X.Normalize()
	lhs.Y.Normalize()
	lhs.Z.Normalize()
	evalCommitments(c, uint32(id)+1, &rhs)
	if !lhs.EquivalentNonConst(&rhs) {
		return &ShareError{ID: id, Err: ErrInvalidShare}
	}
	return nil
}

// VerifySharePublic checks share·G == pub for a recipient that already
// derived its public share pub = P_id = Σ C_k (id+1)^k with PublicShares: the
// check VerifyShare makes, without evaluating the commitments again. share·G
// is constant time (mpc/secp); pub is public. A mismatch or a zero share is
// a *ShareError for id.
func VerifySharePublic(pub *btcec.PublicKey, id int, share *btcec.ModNScalar) error {
	if pub == nil || !pub.IsOnCurve() {
		return &ShareError{ID: id, Err: ErrInvalidPublicShare}
	}
	if share == nil || share.IsZero() {
		return &ShareError{ID: id, Err: ErrZeroShare}
	}
	var lhs, rhs btcec.JacobianPoint
	secp.ScalarBaseMult(share, &lhs)
	lhs.X.Normalize()
	lhs.Y.Normalize()
	lhs.Z.Normalize()
	pub.AsJacobian(&rhs)
	if !lhs.EquivalentNonConst(&rhs) {
		return &ShareError{ID: id, Err: ErrInvalidShare}
	}
	return nil
}

// PublicShares returns P_j = Σ C_k (j+1)^k = f(j+1)·G for j = 0..n−1.
// Variable time (public data). A public share at infinity (a zero share,
// which only a malicious dealer produces) is a *ShareError for that id.
func PublicShares(c Commitments, n int) ([]*btcec.PublicKey, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	if err := checkParams(len(c), n); err != nil {
		return nil, err
	}
	pts := evalRange(c.jacobian(), n)
	for j := range pts {
		if isInfinity(&pts[j]) {
			return nil, &ShareError{ID: j, Err: ErrZeroShare}
		}
	}
	return toPublicKeys(pts), nil
}

// jacobian returns the commitments as Jacobian points.
func (c Commitments) jacobian() []btcec.JacobianPoint {
	out := make([]btcec.JacobianPoint, len(c))
	for k, p := range c {
		p.AsJacobian(&out[k])
	}
	return out
}

// evalRange returns f(1), …, f(n) for the polynomial f(z) = Σ c_k z^k in the
// exponent (any c_k may be the point at infinity), with O(t² + n·t) point additions and t²/2 multiplications by
// integers ≤ t instead of a Horner evaluation (t multiplications) per point.
//
// Horner's rule runs in the binomial basis: h(z) = Σ_i e_i·C(z, i) has
// Δ^i h(0) = e_i, and z·C(z, i) = (i+1)·C(z, i+1) + i·C(z, i), so h ← z·h +
// C_m maps e_i to i·(e_{i−1} + e_i) and sets e_0 = C_m. The e_i are then the
// finite differences of f at 0, from which each next value is t−1
// additions. Variable time, public data only.
func evalRange(c []btcec.JacobianPoint, n int) []btcec.JacobianPoint {
	t := len(c)
	e := make([]btcec.JacobianPoint, t)
	e[0].Set(&c[t-1])
	for m := t - 2; m >= 0; m-- {
		deg := t - 2 - m // h has coefficients e_0..e_deg
		mulSmall(&e[deg], uint32(deg+1), &e[deg+1])
		for i := deg; i >= 1; i-- {
			btcec.AddNonConst(&e[i-1], &e[i], &e[i])
			mulSmall(&e[i], uint32(i), &e[i])
		}
		e[0].Set(&c[m])
	}
	// e_k = Δ^k f(x), starting at x = 0; Δ^{t−1} f is constant.
	pts := make([]btcec.JacobianPoint, n)
	for j := range n {
		for k := 0; k+1 < t; k++ {
			btcec.AddNonConst(&e[k], &e[k+1], &e[k])
		}
		pts[j].Set(&e[0])
	}
	return pts
}

// toPublicKeys converts finite points to keys, sharing one field inversion
// among all of them. Public data only.
func toPublicKeys(pts []btcec.JacobianPoint) []*btcec.PublicKey {
	normalize(pts)
	out := make([]*btcec.PublicKey, len(pts))
	for j := range pts {
		out[j] = btcec.NewPublicKey(&pts[j].X, &pts[j].Y)
	}
	return out
}

// VerifyPublicShares checks that pubs are exactly the public shares of the
// commitments, pubs[j] = Σ C_k (j+1)^k (what PublicShares returns), e.g.
// public shares a dealer published beside its commitments. Public data,
// variable time.
//
// For large t it checks one random linear combination instead of every
// point: Σ_j r_j·P_j = Σ_k (Σ_j r_j (j+1)^k)·C_k, a single multi-scalar
// multiplication of n+t points, with 128-bit r_j drawn from a hash of the
// commitments and the public shares (Fiat–Shamir: a dealer who publishes a
// wrong share passes with probability about 2^-128). For small t it is
// cheaper to compute the shares and compare.
func VerifyPublicShares(c Commitments, pubs []*btcec.PublicKey) error {
	if err := c.validate(); err != nil {
		return err
	}
	t, n := len(c), len(pubs)
	if err := checkParams(t, n); err != nil {
		return err
	}
	for j, p := range pubs {
		if p == nil || !p.IsOnCurve() {
			return &ShareError{ID: j, Err: ErrInvalidPublicShare}
		}
	}
	// Costs in point additions: evalRange about 7·t²/2 + n·t (a
	// multiplication by an integer ≤ t is about 7 of them), the combination
	// about 4·(n+t) (tables) + 45·t + 22·n (digits) + 256 (doublings).
	if 7*t*t/2+n*t <= 4*(n+t)+45*t+22*n+256 {
		want, err := PublicShares(c, n)
		if err != nil {
			return err
		}
		for j := range want {
			if !want[j].IsEqual(pubs[j]) {
				return fmt.Errorf("%w: public share %d is not the commitments' value at %d", ErrInconsistentPublicShares, j, j+1)
			}
		}
		return nil
	}
	seed := publicSharesSeed(c, pubs)
	points := make([]btcec.JacobianPoint, n+t)
	scalars := make([]btcec.ModNScalar, n+t)
	v := make([]btcec.ModNScalar, n) // r_j (j+1)^k, k = 0 first
	for j, p := range pubs {
		p.AsJacobian(&points[j])
		h := sha256.Sum256(binary.BigEndian.AppendUint32(seed[:], uint32(j)))
		var r [32]byte
		copy(r[16:], h[:16])
		scalars[j].SetBytes(&r)
		v[j] = scalars[j]
	}
	// Σ_j r_j P_j − Σ_k s_k C_k with s_k = Σ_j r_j (j+1)^k must be the
	// point at infinity.
	var x btcec.ModNScalar
	for k, ck := range c {
		ck.AsJacobian(&points[n+k])
		s := &scalars[n+k]
		for j := range v {
			s.Add(&v[j])
			if k+1 < t {
				v[j].Mul(x.SetInt(uint32(j) + 1))
			}
		}
		s.Negate()
	}
	sum := msm(points, scalars)
	if !isInfinity(&sum) {
		return fmt.Errorf("%w: a random combination of the public shares does not match the commitments'", ErrInconsistentPublicShares)
	}
	return nil
}

// publicSharesSeed hashes what VerifyPublicShares' combination must not be
// chosen before: every commitment and every public share.
func publicSharesSeed(c Commitments, pubs []*btcec.PublicKey) [32]byte {
	h := sha256.New()
	h.Write([]byte("quorumd/vss/public-shares/v1"))
	for _, p := range c {
		h.Write(p.SerializeCompressed())
	}
	for _, p := range pubs {
		h.Write(p.SerializeCompressed())
	}
	return [32]byte(h.Sum(nil))
}

// sub sets r = a − b; r may alias a or b. Variable time, public data.
func sub(a, b, r *btcec.JacobianPoint) {
	var neg btcec.JacobianPoint
	neg.Set(b)
	neg.Y.Negate(1).Normalize()
	btcec.AddNonConst(a, &neg, r)
}

// CheckPublicShares verifies that the n public shares (pubshares[j] belongs to
// id j, x = j+1) lie on one polynomial of degree ≤ t−1 whose value at 0 is q.
//
// The check uses no particular subset: the values of a degree-(t−1)
// polynomial at the consecutive points 1..n have vanishing t-th finite
// differences, and conversely vanishing t-th differences force every share
// onto the polynomial through the first t; Newton's forward formula then gives
// f(0) = Σ_{k<t} (−1)^k Δ^k f(1). Only point additions are needed (O(n·t)).
// Variable time, public data.
func CheckPublicShares(pubshares []*btcec.PublicKey, t int, q *btcec.PublicKey) error {
	n := len(pubshares)
	if err := checkParams(t, n); err != nil {
		return err
	}
	if q == nil || !q.IsOnCurve() {
		return fmt.Errorf("%w: threshold key", ErrInvalidPublicShare)
	}
	row := make([]btcec.JacobianPoint, n)
	for j, p := range pubshares {
		if p == nil || !p.IsOnCurve() {
			return &ShareError{ID: j, Err: ErrInvalidPublicShare}
		}
		p.AsJacobian(&row[j])
	}

	// row holds Δ^k f at x = 1..n−k; f0 accumulates Σ (−1)^k Δ^k f(1).
	var f0 btcec.JacobianPoint
	for k := range t {
		if k%2 == 0 {
			btcec.AddNonConst(&f0, &row[0], &f0)
		} else {
			sub(&f0, &row[0], &f0)
		}
		for j := 0; j+1 < len(row); j++ {
			sub(&row[j+1], &row[j], &row[j])
		}
		row = row[:len(row)-1]
	}
	for j := range row { // row = Δ^t f at x = 1..n−t
		if !isInfinity(&row[j]) {
			return fmt.Errorf("%w: public share %d is not on the polynomial through public shares 0..%d",
				ErrInconsistentPublicShares, j+t, j+t-1)
		}
	}
	var qj btcec.JacobianPoint
	q.AsJacobian(&qj)
	if !f0.EquivalentNonConst(&qj) {
		return ErrThresholdKeyMismatch
	}
	return nil
}

// Lagrange returns λ_id = Π_{j∈ids, j≠id} x_j / (x_j − x_id) with x = id+1,
// the coefficient of participant id when interpolating f(0) from the shares
// of ids. ids must be distinct and contain id. Variable time (public data).
func Lagrange(ids []int, id int) (*btcec.ModNScalar, error) {
	const maxID = math.MaxUint32 - 1 // x = id+1 must fit in a uint32
	seen := make(map[int]struct{}, len(ids))
	found := false
	for _, j := range ids {
		if j < 0 || j > maxID {
			return nil, fmt.Errorf("%w: %d out of range", ErrInvalidID, j)
		}
		if _, dup := seen[j]; dup {
			return nil, fmt.Errorf("%w: %d appears twice", ErrInvalidID, j)
		}
		seen[j] = struct{}{}
		found = found || j == id
	}
	if !found {
		return nil, fmt.Errorf("%w: %d is not among the signers", ErrInvalidID, id)
	}
	var num, den, xi, xj, diff btcec.ModNScalar
	num.SetInt(1)
	den.SetInt(1)
	xi.SetInt(uint32(id) + 1).Negate()
	for _, j := range ids {
		if j == id {
			continue
		}
		xj.SetInt(uint32(j) + 1)
		num.Mul(&xj)
		diff.Add2(&xj, &xi)
		den.Mul(&diff)
	}
	den.InverseNonConst()
	return num.Mul(&den), nil
}
