package secp

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/libsecp"
)

// The libsecp256k1 backend must be what the package runs on Linux (quorumd's
// platform): a silent fallback to pure Go would still pass every other test.
func TestLibsecpBackendIsUsed(t *testing.T) {
	if err := libsecp.SecretAvailable(); err != nil || !useLibsecp {
		t.Fatalf("libsecp256k1 secret backend is off: %v", err)
	}
	if name, why := Backend(); name != "libsecp256k1" || why != nil {
		t.Fatalf("Backend() = %q, %v; the daemon would log the wrong backend", name, why)
	}
}

// TestLibsecpMatchesBtcecAndPureGo cross-checks the two implementations of
// every secret operation on edge and random scalars (DESIGN §5), and k·G
// also against btcec's variable-time code. 10,000 inputs without -race
// (make test-timing), 600 with.
func TestLibsecpMatchesBtcecAndPureGo(t *testing.T) {
	r := newRand(t)
	ks := []*btcec.ModNScalar{scalarInt(0)}
	for _, tc := range edgeScalars(t) {
		ks = append(ks, tc.k)
	}
	for range randomInputs() {
		ks = append(ks, randScalar(r))
	}
	for i, k := range ks {
		var got, want btcec.JacobianPoint
		ScalarBaseMult(k, &got)
		scalarBaseMultGo(k, &want)
		if ref := wantBase(k); !sameRepr(&got, &ref) {
			t.Fatalf("k·G case %d: libsecp256k1 differs from btcec", i)
		}
		if !sameRepr(&got, &want) {
			t.Fatalf("k·G case %d (k=%v): libsecp256k1 (%v, %v, %v), pure Go (%v, %v, %v)", i, k, got.X, got.Y, got.Z, want.X, want.Y, want.Z)
		}
		if i%10 != 0 {
			continue // k·P costs more; every tenth input and all edges below
		}
		crossCheckMult(t, k, r)
		p := randPoint(r, true)
		pub := btcec.NewPublicKey(&p.X, &p.Y)
		gx, gerr := ECDH(k, pub)
		wx, werr := ecdhGo(k, pub)
		if gx != wx || !errors.Is(gerr, werr) || (gerr == nil) != (werr == nil) {
			t.Fatalf("ECDH case %d: libsecp256k1 %x %v, pure Go %x %v", i, gx, gerr, wx, werr)
		}
	}
	for _, tc := range edgeScalars(t) {
		crossCheckMult(t, tc.k, r)
		p := randPoint(r, true)
		pub := btcec.NewPublicKey(&p.X, &p.Y)
		gx, gerr := ECDH(tc.k, pub)
		wx, werr := ecdhGo(tc.k, pub)
		if gx != wx || (gerr == nil) != (werr == nil) {
			t.Fatalf("ECDH k=%s: libsecp256k1 %x %v, pure Go %x %v", tc.name, gx, gerr, wx, werr)
		}
	}
}

// crossCheckMult compares ScalarMult's two implementations on an affine and
// a non-affine random point, and on infinity.
func crossCheckMult(t *testing.T, k *btcec.ModNScalar, r *rand.Rand) {
	t.Helper()
	var inf btcec.JacobianPoint
	for _, p := range []btcec.JacobianPoint{randPoint(r, true), randPoint(r, false), inf} {
		var got, want btcec.JacobianPoint
		ScalarMult(k, &p, &got)
		scalarMultGo(k, &p, &want)
		if !sameRepr(&got, &want) {
			t.Fatalf("k·P (k=%v, P.Z=%v): libsecp256k1 (%v, %v, %v), pure Go (%v, %v, %v)", k, p.Z, got.X, got.Y, got.Z, want.X, want.Y, want.Z)
		}
	}
}

// The pure-Go reference stays constant time too: it is the fallback when the
// backend cannot lock memory.
func TestConstantTimeScalarBaseMultGo(t *testing.T) { timeBaseMult(t, scalarBaseMultGo) }
func TestConstantTimeScalarMultGo(t *testing.T)     { timeMult(t, scalarMultGo) }
func TestConstantTimeECDHGo(t *testing.T)           { timeECDH(t, ecdhGo) }

func BenchmarkScalarBaseMultGo(b *testing.B) {
	ks, _ := benchInputs(b)
	var out btcec.JacobianPoint
	for i := 0; b.Loop(); i++ {
		scalarBaseMultGo(ks[i%len(ks)], &out)
	}
}

func BenchmarkScalarMultGo(b *testing.B) {
	ks, ps := benchInputs(b)
	var out btcec.JacobianPoint
	for i := 0; b.Loop(); i++ {
		scalarMultGo(ks[i%len(ks)], &ps[i%len(ps)], &out)
	}
}

func BenchmarkECDHGo(b *testing.B) {
	ks, ps := benchInputs(b)
	pubs := make([]*btcec.PublicKey, len(ps))
	for i := range ps {
		pubs[i] = btcec.NewPublicKey(&ps[i].X, &ps[i].Y)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := ecdhGo(ks[i%len(ks)], pubs[i%len(pubs)]); err != nil {
			b.Fatal(err)
		}
	}
}
