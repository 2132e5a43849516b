package vss

import (
	"bytes"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/internal/testkit"
	"github.com/quorumd/quorumd/mpc/internal/dudect"
)

// vectorsDir is where the shared test vectors are read in place.
func vectorsDir(tb testing.TB) string { return testkit.VectorsDir(tb) }

func randScalar(tb testing.TB) *btcec.ModNScalar {
	tb.Helper()
	var s btcec.ModNScalar
	if err := randomScalar(crand.Reader, &s); err != nil {
		tb.Fatal(err)
	}
	return &s
}

// pubOf returns s·G with btcec's variable-time code: an independent reference
// on test data.
func pubOf(s *btcec.ModNScalar) *btcec.PublicKey {
	return btcec.PrivKeyFromScalar(s).PubKey()
}

type dealerGroup struct {
	TgID      string   `json:"tg_id"`
	T         int      `json:"t"`
	N         int      `json:"n"`
	ThreshSK  string   `json:"thresh_sk"`
	ThreshPK  string   `json:"thresh_pk"`
	IDs       []int    `json:"ids"`
	SecShares []string `json:"secshares"`
	PubShares []string `json:"pubshares"`
}

// bip445DealerCoefficients derives the BIP445 reference trusted dealer's
// coefficients, c_i = tagged_hash("BIP0445/trusted/keygen", sk || i as 4-byte
// big endian) for i = 1..t−1 with f(z) = sk + Σ c_i z^(t−i), and returns them
// in this package's order (index k multiplies z^k).
func bip445DealerCoefficients(sk [32]byte, t int) []*btcec.ModNScalar {
	tag := sha256.Sum256([]byte("BIP0445/trusted/keygen"))
	coeffs := make([]*btcec.ModNScalar, t)
	coeffs[0] = new(btcec.ModNScalar)
	coeffs[0].SetBytes(&sk)
	for i := 1; i < t; i++ {
		h := sha256.New()
		h.Write(tag[:])
		h.Write(tag[:])
		h.Write(sk[:])
		binary.Write(h, binary.BigEndian, uint32(i))
		var c btcec.ModNScalar
		c.SetByteSlice(h.Sum(nil))
		coeffs[t-i] = &c
	}
	return coeffs
}

func TestDealerKeygenVectors(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vectorsDir(t), "bip445", "dealer_keygen.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []dealerGroup `json:"groups"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Groups) != 4 {
		t.Fatalf("%d groups, want 4", len(file.Groups))
	}
	for _, g := range file.Groups {
		t.Run(g.TgID, func(t *testing.T) {
			sk, _ := hex.DecodeString(g.ThreshSK)
			d, err := DealWithCoefficients(bip445DealerCoefficients([32]byte(sk), g.T), g.N)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Zero()
			if len(d.Commitments) != g.T || len(d.Shares) != g.N || len(g.IDs) != g.N {
				t.Fatalf("sizes: %d commitments, %d shares", len(d.Commitments), len(d.Shares))
			}
			q, err := ThresholdKey(d.Commitments)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%X", q.SerializeCompressed()); got != g.ThreshPK {
				t.Fatalf("thresh_pk %s, want %s", got, g.ThreshPK)
			}
			for id := range g.N {
				if got := fmt.Sprintf("%X", d.Shares[id].Bytes()); got != g.SecShares[id] {
					t.Fatalf("secshare %d = %s, want %s", id, got, g.SecShares[id])
				}
				if err := VerifyShare(d.Commitments, id, &d.Shares[id]); err != nil {
					t.Fatalf("VerifyShare(%d): %v", id, err)
				}
			}
			pubs, err := PublicShares(d.Commitments, g.N)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]*btcec.PublicKey, g.N)
			for id := range g.N {
				if got := fmt.Sprintf("%X", pubs[id].SerializeCompressed()); got != g.PubShares[id] {
					t.Fatalf("pubshare %d = %s, want %s", id, got, g.PubShares[id])
				}
				b, _ := hex.DecodeString(g.PubShares[id])
				if want[id], err = btcec.ParsePubKey(b); err != nil {
					t.Fatal(err)
				}
			}
			if err := CheckPublicShares(want, g.T, q); err != nil {
				t.Fatalf("CheckPublicShares on the vector's pubshares: %v", err)
			}
		})
	}
}

// interpolate returns Σ λ_i·shares[i] over ids.
func interpolate(t *testing.T, ids []int, shares []btcec.ModNScalar) *btcec.ModNScalar {
	t.Helper()
	var sum, term btcec.ModNScalar
	for _, id := range ids {
		l, err := Lagrange(ids, id)
		if err != nil {
			t.Fatal(err)
		}
		term.Mul2(l, &shares[id])
		sum.Add(&term)
	}
	return &sum
}

// TestDealRandom: random t-of-n up to 20; every t..n subset interpolates back
// to x, t−1 shares do not, every share verifies, and the public shares match
// the secret ones and pass CheckPublicShares.
func TestDealRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 2))
	for iter := range 25 {
		n := 1 + rng.IntN(20)
		th := 1 + rng.IntN(n)
		x := randScalar(t)
		d, err := Deal(x, th, n, nil)
		if err != nil {
			t.Fatalf("Deal(%d-of-%d): %v", th, n, err)
		}
		q, _ := ThresholdKey(d.Commitments)
		if !q.IsEqual(pubOf(x)) {
			t.Fatalf("#%d threshold key is not x·G", iter)
		}
		for size := th; size <= n; size++ {
			ids := rng.Perm(n)[:size]
			if got := interpolate(t, ids, d.Shares); !got.Equals(x) {
				t.Fatalf("#%d %d-of-%d: subset %v does not interpolate to x", iter, th, n, ids)
			}
		}
		if th > 1 {
			ids := rng.Perm(n)[:th-1]
			if got := interpolate(t, ids, d.Shares); got.Equals(x) {
				t.Fatalf("#%d %d-of-%d: t−1 shares %v reveal x", iter, th, n, ids)
			}
		}
		pubs, err := PublicShares(d.Commitments, n)
		if err != nil {
			t.Fatal(err)
		}
		for id := range n {
			if err := VerifyShare(d.Commitments, id, &d.Shares[id]); err != nil {
				t.Fatalf("#%d VerifyShare(%d): %v", iter, id, err)
			}
			if !pubs[id].IsEqual(pubOf(&d.Shares[id])) {
				t.Fatalf("#%d public share %d is not share·G", iter, id)
			}
		}
		if err := CheckPublicShares(pubs, th, q); err != nil {
			t.Fatalf("#%d %d-of-%d CheckPublicShares: %v", iter, th, n, err)
		}
		// Wire round trip of the commitments.
		c2, err := ParseCommitments(d.Commitments.Serialize(), th)
		if err != nil {
			t.Fatal(err)
		}
		for k := range c2 {
			if !c2[k].IsEqual(d.Commitments[k]) {
				t.Fatal("commitment round trip")
			}
		}
		d.Zero()
	}
}

// TestPublicSharesMaxN: at n = MaxParticipants most public shares come from
// finite differences; spot-check them against share·G.
func TestPublicSharesMaxN(t *testing.T) {
	const th, n = 5, MaxParticipants
	d, err := Deal(randScalar(t), th, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Zero()
	pubs, err := PublicShares(d.Commitments, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{0, th - 1, th, th + 1, 100, n - 2, n - 1} {
		if !pubs[id].IsEqual(pubOf(&d.Shares[id])) {
			t.Fatalf("public share %d is not share·G", id)
		}
	}
	if err := VerifyShare(d.Commitments, n-1, &d.Shares[n-1]); err != nil {
		t.Fatal(err)
	}
	if err := CheckPublicShares(pubs, th, d.Commitments[0]); err != nil {
		t.Fatal(err)
	}
	if err := VerifyShare(d.Commitments, n, &d.Shares[0]); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("id n: %v", err)
	}
}

// TestPublicSharesMatchHorner: the binomial-basis evaluation (PublicShares)
// against Horner's rule at every point, for shapes where t is large, equals
// n, or is 1.
func TestPublicSharesMatchHorner(t *testing.T) {
	for _, s := range []struct{ t, n int }{{1, 4}, {2, 2}, {67, 100}, {100, 100}, {3, MaxParticipants}} {
		d, err := Deal(randScalar(t), s.t, s.n, nil)
		if err != nil {
			t.Fatal(err)
		}
		pubs, err := PublicShares(d.Commitments, s.n)
		if err != nil {
			t.Fatal(err)
		}
		for j := range s.n {
			var want btcec.JacobianPoint
			evalCommitments(d.Commitments, uint32(j)+1, &want)
			want.ToAffine()
			if !pubs[j].IsEqual(btcec.NewPublicKey(&want.X, &want.Y)) {
				t.Fatalf("%d-of-%d: public share %d differs from Horner's", s.t, s.n, j)
			}
			if j == 0 || j == s.n-1 {
				if err := VerifySharePublic(pubs[j], j, &d.Shares[j]); err != nil {
					t.Fatalf("%d-of-%d: VerifySharePublic(%d): %v", s.t, s.n, j, err)
				}
			}
		}
		// Another party's share (distinct unless t = 1), or a zero one,
		// fails against pubs[0].
		if s.t > 1 {
			wantShareError(t, VerifySharePublic(pubs[0], 0, &d.Shares[1]), 0, ErrInvalidShare)
		}
		wantShareError(t, VerifySharePublic(pubs[0], 0, new(btcec.ModNScalar)), 0, ErrZeroShare)
		d.Zero()
	}
}

func wantShareError(t *testing.T, err error, id int, sentinel error) {
	t.Helper()
	var se *ShareError
	if !errors.As(err, &se) || se.ID != id || !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want *ShareError{ID: %d} wrapping %v", err, id, sentinel)
	}
}

func TestVerifyShareRejects(t *testing.T) {
	x := randScalar(t)
	d, err := Deal(x, 3, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Zero()
	var one btcec.ModNScalar
	one.SetInt(1)
	for id := range 5 {
		var bumped btcec.ModNScalar
		bumped.Add2(&d.Shares[id], &one)
		other := &d.Shares[(id+1)%5]
		for _, c := range []struct {
			name  string
			share *btcec.ModNScalar
			want  error
		}{
			{"share+1", &bumped, ErrInvalidShare},
			{"another id's share", other, ErrInvalidShare},
			{"random", randScalar(t), ErrInvalidShare},
			{"zero", new(btcec.ModNScalar), ErrZeroShare},
			{"nil", nil, ErrZeroShare},
		} {
			t.Run(fmt.Sprintf("%d/%s", id, c.name), func(t *testing.T) {
				wantShareError(t, VerifyShare(d.Commitments, id, c.share), id, c.want)
			})
		}
		// A valid share against commitments with one coefficient replaced.
		for k := range d.Commitments {
			bad := append(Commitments(nil), d.Commitments...)
			bad[k] = pubOf(randScalar(t))
			wantShareError(t, VerifyShare(bad, id, &d.Shares[id]), id, ErrInvalidShare)
		}
	}
	if err := VerifyShare(d.Commitments, -1, &d.Shares[0]); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("id -1: %v", err)
	}
	if err := VerifyShare(Commitments{d.Commitments[0], nil}, 0, &d.Shares[0]); !errors.Is(err, ErrInvalidCommitment) {
		t.Fatalf("nil commitment: %v", err)
	}
	if err := VerifyShare(nil, 0, &d.Shares[0]); !errors.Is(err, ErrInvalidParameters) {
		t.Fatalf("no commitments: %v", err)
	}
}

// honestPubShares deals t-of-n and returns the public shares and key.
func honestPubShares(t *testing.T, th, n int) ([]*btcec.PublicKey, *btcec.PublicKey) {
	t.Helper()
	d, err := Deal(randScalar(t), th, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Zero()
	pubs, err := PublicShares(d.Commitments, n)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := ThresholdKey(d.Commitments)
	return pubs, q
}

func addPoints(a, b *btcec.PublicKey) *btcec.PublicKey {
	var ja, jb, r btcec.JacobianPoint
	a.AsJacobian(&ja)
	b.AsJacobian(&jb)
	btcec.AddNonConst(&ja, &jb, &r)
	r.ToAffine()
	return btcec.NewPublicKey(&r.X, &r.Y)
}

func mulPoint(k *btcec.ModNScalar, p *btcec.PublicKey) *btcec.PublicKey {
	var jp, r btcec.JacobianPoint
	p.AsJacobian(&jp)
	btcec.ScalarMultNonConst(k, &jp, &r)
	r.ToAffine()
	return btcec.NewPublicKey(&r.X, &r.Y)
}

// subsetKey returns Σ_{i∈ids} λ_i·pubs[i]: what a check over one signer
// subset would compare with Q.
func subsetKey(t *testing.T, ids []int, pubs []*btcec.PublicKey) *btcec.PublicKey {
	t.Helper()
	var acc *btcec.PublicKey
	for _, id := range ids {
		l, err := Lagrange(ids, id)
		if err != nil {
			t.Fatal(err)
		}
		term := mulPoint(l, pubs[id])
		if acc == nil {
			acc = term
		} else {
			acc = addPoints(acc, term)
		}
	}
	return acc
}

// TestCheckPublicSharesCancelingPair corrupts two public shares a, b of a
// subset S so that the errors cancel in S's interpolation (λ_a·Δ_a + λ_b·Δ_b
// = 0): a per-subset check passes, CheckPublicShares must not.
func TestCheckPublicSharesCancelingPair(t *testing.T) {
	for _, c := range []struct {
		th, n  int
		subset []int
		a, b   int
	}{
		{2, 3, []int{0, 1}, 0, 1},
		{2, 3, []int{1, 2}, 1, 2},
		{3, 5, []int{0, 1, 2}, 0, 2},
		{3, 5, []int{1, 3, 4}, 3, 4},
		{7, 10, []int{0, 2, 3, 5, 6, 8, 9}, 2, 9},
		{5, 6, []int{0, 1, 2, 3, 4}, 1, 3},
	} {
		t.Run(fmt.Sprintf("%d-of-%d/%v", c.th, c.n, c.subset), func(t *testing.T) {
			pubs, q := honestPubShares(t, c.th, c.n)
			la, _ := Lagrange(c.subset, c.a)
			lb, _ := Lagrange(c.subset, c.b)
			D := pubOf(randScalar(t))
			var negLa btcec.ModNScalar
			negLa.NegateVal(la)
			bad := append([]*btcec.PublicKey(nil), pubs...)
			bad[c.a] = addPoints(pubs[c.a], mulPoint(lb, D))     // Δ_a = λ_b·D
			bad[c.b] = addPoints(pubs[c.b], mulPoint(&negLa, D)) // Δ_b = −λ_a·D
			if !subsetKey(t, c.subset, bad).IsEqual(q) {
				t.Fatal("test construction: the corruption should cancel in the subset")
			}
			if err := CheckPublicShares(bad, c.th, q); !errors.Is(err, ErrInconsistentPublicShares) {
				t.Fatalf("canceling pair not caught: %v", err)
			}
		})
	}
}

func TestCheckPublicSharesRejects(t *testing.T) {
	pubs, q := honestPubShares(t, 3, 6)
	if err := CheckPublicShares(pubs, 3, q); err != nil {
		t.Fatal(err)
	}
	// Every single corrupted position is caught, including the first t.
	for j := range pubs {
		bad := append([]*btcec.PublicKey(nil), pubs...)
		bad[j] = addPoints(bad[j], btcec.Generator())
		if err := CheckPublicShares(bad, 3, q); !errors.Is(err, ErrInconsistentPublicShares) {
			t.Fatalf("corrupted share %d: %v", j, err)
		}
	}
	swapped := append([]*btcec.PublicKey(nil), pubs...)
	swapped[1], swapped[4] = swapped[4], swapped[1]
	if err := CheckPublicShares(swapped, 3, q); !errors.Is(err, ErrInconsistentPublicShares) {
		t.Fatalf("swapped shares: %v", err)
	}
	if err := CheckPublicShares(pubs, 3, btcec.Generator()); !errors.Is(err, ErrThresholdKeyMismatch) {
		t.Fatalf("wrong Q: %v", err)
	}
	// A degree-2 sharing is not a degree-1 (2-of-6) sharing.
	if err := CheckPublicShares(pubs, 2, q); !errors.Is(err, ErrInconsistentPublicShares) {
		t.Fatalf("claimed t=2: %v", err)
	}
	// but it is a valid 4-of-6 (degree ≤ 3) sharing of the same key.
	if err := CheckPublicShares(pubs, 4, q); err != nil {
		t.Fatalf("t=4: %v", err)
	}
	// t = n: only Q constrains the shares.
	if err := CheckPublicShares(pubs, 6, q); err != nil {
		t.Fatalf("t=n: %v", err)
	}
	bad := append([]*btcec.PublicKey(nil), pubs...)
	bad[5] = addPoints(bad[5], btcec.Generator())
	if err := CheckPublicShares(bad, 6, q); !errors.Is(err, ErrThresholdKeyMismatch) {
		t.Fatalf("t=n, wrong share: %v", err)
	}
	withNil := append([]*btcec.PublicKey(nil), pubs...)
	withNil[2] = nil
	wantShareError(t, CheckPublicShares(withNil, 3, q), 2, ErrInvalidPublicShare)
	if err := CheckPublicShares(pubs, 3, nil); !errors.Is(err, ErrInvalidPublicShare) {
		t.Fatalf("nil Q: %v", err)
	}
	for _, th := range []int{0, 7} {
		if err := CheckPublicShares(pubs, th, q); !errors.Is(err, ErrInvalidParameters) {
			t.Fatalf("t=%d: %v", th, err)
		}
	}
}

func TestParameterChecks(t *testing.T) {
	x := randScalar(t)
	for _, c := range []struct{ th, n int }{
		{0, 3}, {-1, 3}, {4, 3}, {1, 0}, {2, MaxParticipants + 1}, {MaxParticipants + 1, MaxParticipants + 1},
	} {
		if _, err := Deal(x, c.th, c.n, nil); !errors.Is(err, ErrInvalidParameters) {
			t.Errorf("Deal(t=%d, n=%d): %v", c.th, c.n, err)
		}
	}
	if _, err := Deal(new(btcec.ModNScalar), 2, 3, nil); !errors.Is(err, ErrInvalidCoefficient) {
		t.Errorf("Deal(x=0): %v", err)
	}
	if _, err := Deal(nil, 2, 3, nil); !errors.Is(err, ErrInvalidCoefficient) {
		t.Errorf("Deal(nil): %v", err)
	}
	if _, err := DealWithCoefficients([]*btcec.ModNScalar{x, new(btcec.ModNScalar)}, 3); !errors.Is(err, ErrInvalidCoefficient) {
		t.Errorf("zero coefficient: %v", err)
	}
	d, err := Deal(x, 3, 5, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Zero()
	if _, err := PublicShares(d.Commitments, 2); !errors.Is(err, ErrInvalidParameters) {
		t.Errorf("PublicShares(t=3, n=2): %v", err)
	}
	if _, err := PublicShares(d.Commitments, MaxParticipants+1); !errors.Is(err, ErrInvalidParameters) {
		t.Errorf("PublicShares(n>max): %v", err)
	}
	if _, err := ThresholdKey(nil); !errors.Is(err, ErrInvalidParameters) {
		t.Errorf("ThresholdKey(nil): %v", err)
	}
}

func TestParseCommitments(t *testing.T) {
	d, err := Deal(randScalar(t), 3, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Zero()
	raw := d.Commitments.Serialize()
	if _, err := ParseCommitments(raw, 3); err != nil {
		t.Fatal(err)
	}
	offCurve := bytes.Clone(raw[1])
	offCurve[0] = 0x02
	// x = 5 is not the x coordinate of any secp256k1 point (5³+7 = 132 is a
	// non-residue mod p).
	copy(offCurve[1:], make([]byte, 32))
	offCurve[32] = 5
	wrongPrefix := bytes.Clone(raw[1])
	wrongPrefix[0] = 0x04
	uncompressed := d.Commitments[1].SerializeUncompressed()
	for _, c := range []struct {
		name string
		raw  [][]byte
		t    int
	}{
		{"too few", raw[:2], 3},
		{"too many", raw, 2},
		{"none", nil, 1},
		{"off curve", [][]byte{raw[0], offCurve, raw[2]}, 3},
		{"bad prefix", [][]byte{raw[0], wrongPrefix, raw[2]}, 3},
		{"uncompressed", [][]byte{raw[0], uncompressed, raw[2]}, 3},
		{"truncated", [][]byte{raw[0], raw[1][:32], raw[2]}, 3},
		{"nil entry", [][]byte{raw[0], nil, raw[2]}, 3},
	} {
		if _, err := ParseCommitments(c.raw, c.t); !errors.Is(err, ErrInvalidCommitment) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	for _, th := range []int{0, MaxParticipants + 1} {
		if _, err := ParseCommitments(raw, th); !errors.Is(err, ErrInvalidParameters) {
			t.Errorf("t=%d: %v", th, err)
		}
	}
}

// TestZeroShare: a dealer whose polynomial vanishes at some id+1 is refused,
// naming that id, both when dealing and when deriving public shares.
func TestZeroShare(t *testing.T) {
	x := randScalar(t)
	var a1 btcec.ModNScalar
	a1.NegateVal(x) // f(z) = x − x·z, f(1) = 0
	_, err := DealWithCoefficients([]*btcec.ModNScalar{x, &a1}, 3)
	wantShareError(t, err, 0, ErrZeroShare)

	// f(z) = x − (x/2)·z vanishes at z = 2, id 1.
	var half, two btcec.ModNScalar
	two.SetInt(2)
	half.Set(x).Mul(two.InverseNonConst()).Negate()
	c := Commitments{pubOf(x), pubOf(&half)}
	_, err = PublicShares(c, 3)
	wantShareError(t, err, 1, ErrZeroShare)
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

type constReader byte

func (c constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestRandomness(t *testing.T) {
	x := randScalar(t)
	for _, c := range []struct {
		name string
		r    io.Reader
	}{
		{"error", errReader{}},
		{"short", strings.NewReader("short")},
		{"all ones (≥ n)", constReader(0xFF)},
		{"all zeros", constReader(0)},
	} {
		if _, err := Deal(x, 2, 3, c.r); !errors.Is(err, ErrRandomness) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// t = 1 draws nothing: every share is x.
	d, err := Deal(x, 1, 3, errReader{})
	if err != nil {
		t.Fatal(err)
	}
	for id := range d.Shares {
		if !d.Shares[id].Equals(x) {
			t.Fatal("1-of-n share differs from x")
		}
	}
	// The same random stream gives the same dealing.
	seed := make([]byte, 32*8)
	crand.Read(seed)
	d1, _ := Deal(x, 5, 7, bytes.NewReader(seed))
	d2, _ := Deal(x, 5, 7, bytes.NewReader(seed))
	for id := range d1.Shares {
		if !d1.Shares[id].Equals(&d2.Shares[id]) {
			t.Fatal("Deal is not a function of its random stream")
		}
	}
}

func TestZeroing(t *testing.T) {
	x := randScalar(t)
	p, err := NewPolynomial(x, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	coeffs := p.coeffs
	d, err := p.Deal(4)
	if err != nil {
		t.Fatal(err)
	}
	shares := d.Shares
	p.Zero()
	d.Zero()
	for i := range coeffs {
		if !coeffs[i].IsZero() {
			t.Fatalf("coefficient %d not zeroed", i)
		}
	}
	for i := range shares {
		if !shares[i].IsZero() {
			t.Fatalf("share %d not zeroed", i)
		}
	}
	var out btcec.ModNScalar
	if err := p.Evaluate(0, &out); err == nil {
		t.Fatal("Evaluate on a zeroed polynomial")
	}
	if _, err := p.Deal(4); err == nil {
		t.Fatal("Deal on a zeroed polynomial")
	}
}

func TestLagrange(t *testing.T) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 3))
	for range 50 {
		u := 1 + rng.IntN(20)
		ids := rng.Perm(40)[:u]
		lambda := make([]*btcec.ModNScalar, u)
		for i, id := range ids {
			var err error
			if lambda[i], err = Lagrange(ids, id); err != nil {
				t.Fatal(err)
			}
		}
		// Σ λ_i x_i^k = [k == 0] for k < u: interpolation is exact on degree < u.
		for k := range u {
			var sum, xk, term btcec.ModNScalar
			for i, id := range ids {
				l := lambda[i]
				var x btcec.ModNScalar
				x.SetInt(uint32(id) + 1)
				xk.SetInt(1)
				for range k {
					xk.Mul(&x)
				}
				term.Mul2(l, &xk)
				sum.Add(&term)
			}
			var want btcec.ModNScalar
			if k == 0 {
				want.SetInt(1)
			}
			if !sum.Equals(&want) {
				t.Fatalf("ids %v: Σ λ·x^%d = %v", ids, k, sum)
			}
		}
	}
	// 2-of-{0,1}: x = 1, 2 → λ_0 = 2/(2−1) = 2, λ_1 = 1/(1−2) = −1.
	l0, _ := Lagrange([]int{0, 1}, 0)
	l1, _ := Lagrange([]int{0, 1}, 1)
	var two, minusOne btcec.ModNScalar
	two.SetInt(2)
	minusOne.SetInt(1).Negate()
	if !l0.Equals(&two) || !l1.Equals(&minusOne) {
		t.Fatalf("λ = %v, %v", l0, l1)
	}
	for _, c := range []struct {
		ids []int
		id  int
	}{
		{[]int{0, 1, 1}, 0},
		{[]int{0, 1}, 2},
		{[]int{-1, 0}, 0},
		{nil, 0},
	} {
		if _, err := Lagrange(c.ids, c.id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Lagrange(%v, %d): %v", c.ids, c.id, err)
		}
	}
}

// TestEvaluateConstantTime: evaluating a fixed polynomial vs fresh random
// ones (same t and id) must be indistinguishable in time.
func TestEvaluateConstantTime(t *testing.T) {
	const th = 7
	fixed := make([]*btcec.ModNScalar, th)
	for k := range fixed {
		fixed[k] = new(btcec.ModNScalar).SetInt(1)
	}
	mk := func(c []*btcec.ModNScalar) *Polynomial {
		p, err := NewPolynomialFromCoefficients(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	random := func() *Polynomial {
		c := make([]*btcec.ModNScalar, th)
		for k := range c {
			c[k] = randScalar(t)
		}
		return mk(c)
	}
	var out btcec.ModNScalar
	dudect.Test(t, func() *Polynomial { return mk(fixed) }, random,
		func(p *Polynomial) {
			if err := p.Evaluate(5, &out); err != nil {
				panic(err)
			}
		})
}

// TestDealConstantTime: the secret part of Deal (commitments through
// mpc/secp and every share) for a fixed secret polynomial vs random ones.
func TestDealConstantTime(t *testing.T) {
	const th, n = 3, 5
	fixed := make([]*btcec.ModNScalar, th)
	for k := range fixed {
		fixed[k] = new(btcec.ModNScalar).SetInt(uint32(k + 1))
	}
	mk := func(c []*btcec.ModNScalar) *Polynomial {
		p, err := NewPolynomialFromCoefficients(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	random := func() *Polynomial {
		c := make([]*btcec.ModNScalar, th)
		for k := range c {
			c[k] = randScalar(t)
		}
		return mk(c)
	}
	dudect.Test(t, func() *Polynomial { return mk(fixed) }, random,
		func(p *Polynomial) {
			d, err := p.Deal(n)
			if err != nil {
				panic(err)
			}
			d.Zero()
		})
}

// TestVerifySharePublicConstantTime: the secret part of VerifySharePublic
// (share·G) for a fixed share vs random ones, checked against a public share
// neither matches (the outcome, which the caller learns anyway, is the same).
func TestVerifySharePublicConstantTime(t *testing.T) {
	pub := btcec.Generator()
	fixed := new(btcec.ModNScalar).SetInt(7)
	dudect.Test(t, func() *btcec.ModNScalar { return new(btcec.ModNScalar).Set(fixed) }, func() *btcec.ModNScalar { return randScalar(t) },
		func(share *btcec.ModNScalar) {
			if VerifySharePublic(pub, 0, share) == nil {
				panic("a share matched")
			}
		})
}

var benchSizes = []struct{ t, n int }{{2, 3}, {3, 5}, {7, 10}, {67, 100}}

func BenchmarkDeal(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", s.t, s.n), func(b *testing.B) {
			x := randScalar(b)
			for b.Loop() {
				d, err := Deal(x, s.t, s.n, nil)
				if err != nil {
					b.Fatal(err)
				}
				d.Zero()
			}
		})
	}
}

func BenchmarkVerifyShare(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", s.t, s.n), func(b *testing.B) {
			d, err := Deal(randScalar(b), s.t, s.n, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Zero()
			id := s.n - 1
			for b.Loop() {
				if err := VerifyShare(d.Commitments, id, &d.Shares[id]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecipientVerify is one recipient's full check: its share, every
// public share, and their consistency with the threshold key.
func BenchmarkRecipientVerify(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", s.t, s.n), func(b *testing.B) {
			d, err := Deal(randScalar(b), s.t, s.n, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Zero()
			id := s.n - 1
			for b.Loop() {
				if err := VerifyShare(d.Commitments, id, &d.Shares[id]); err != nil {
					b.Fatal(err)
				}
				pubs, err := PublicShares(d.Commitments, s.n)
				if err != nil {
					b.Fatal(err)
				}
				if err := CheckPublicShares(pubs, s.t, d.Commitments[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPublicShares(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", s.t, s.n), func(b *testing.B) {
			d, err := Deal(randScalar(b), s.t, s.n, nil)
			if err != nil {
				b.Fatal(err)
			}
			d.Zero()
			for b.Loop() {
				if _, err := PublicShares(d.Commitments, s.n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCheckPublicShares(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(fmt.Sprintf("%dof%d", s.t, s.n), func(b *testing.B) {
			d, err := Deal(randScalar(b), s.t, s.n, nil)
			if err != nil {
				b.Fatal(err)
			}
			d.Zero()
			pubs, _ := PublicShares(d.Commitments, s.n)
			for b.Loop() {
				if err := CheckPublicShares(pubs, s.t, d.Commitments[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
