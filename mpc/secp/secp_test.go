package secp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"

	"github.com/quorumd/quorumd/mpc/internal/dudect"
)

// randomInputs is how many random scalars each cross-check against btcec
// uses; the race detector slows field arithmetic ~10×, so it runs fewer.
func randomInputs() int {
	if dudect.RaceEnabled {
		return 600
	}
	return 10_000
}

// newRand returns a seeded generator and logs the seed for reproduction.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := rand.Uint64()
	t.Logf("seed %#x", seed)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.New(rand.NewChaCha8(s))
}

func randScalar(r *rand.Rand) *btcec.ModNScalar {
	var b [32]byte
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	k := new(btcec.ModNScalar)
	k.SetBytes(&b)
	return k
}

func scalarHex(t testing.TB, s string) *btcec.ModNScalar {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) > 32 {
		t.Fatalf("bad scalar hex %q", s)
	}
	k := new(btcec.ModNScalar)
	if k.SetByteSlice(b) {
		t.Fatalf("scalar %q overflows n", s)
	}
	return k
}

func scalarInt(v uint32) *btcec.ModNScalar { return new(btcec.ModNScalar).SetInt(v) }

func negScalar(v uint32) *btcec.ModNScalar { return new(btcec.ModNScalar).SetInt(v).Negate() }

// canonical reduces a btcec result to the form this package promises:
// affine with Z = 1, or X = Y = Z = 0 for infinity. dcrd represents infinity
// either with Z = 0 or (for base multiplication) as X = Y = 0, which is not
// on the curve.
func canonical(p btcec.JacobianPoint) btcec.JacobianPoint {
	if p.Z.Normalize().IsZero() {
		return btcec.JacobianPoint{}
	}
	p.ToAffine()
	if p.X.IsZero() && p.Y.IsZero() {
		return btcec.JacobianPoint{}
	}
	return p
}

// sameRepr compares limb for limb, so it also asserts that got is normalized.
func sameRepr(got, want *btcec.JacobianPoint) bool {
	return got.X.Equals(&want.X) && got.Y.Equals(&want.Y) && got.Z.Equals(&want.Z)
}

func wantBase(k *btcec.ModNScalar) btcec.JacobianPoint {
	var r btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(k, &r)
	return canonical(r)
}

func wantMult(k *btcec.ModNScalar, p *btcec.JacobianPoint) btcec.JacobianPoint {
	var r btcec.JacobianPoint
	btcec.ScalarMultNonConst(k, p, &r)
	return canonical(r)
}

func generator() btcec.JacobianPoint {
	var g btcec.JacobianPoint
	btcec.GeneratorJacobian(&g)
	return g
}

func negPoint(p btcec.JacobianPoint) btcec.JacobianPoint {
	p.Y.Normalize().Negate(1).Normalize()
	return p
}

// randPoint returns a random public test point, left in btcec's Jacobian
// form (Z ≠ 1) unless affine is set.
func randPoint(r *rand.Rand, affine bool) btcec.JacobianPoint {
	var p btcec.JacobianPoint
	btcec.ScalarBaseMultNonConst(randScalar(r), &p)
	if affine {
		p.ToAffine()
	}
	return p
}

func edgeScalars(t testing.TB) []struct {
	name string
	k    *btcec.ModNScalar
} {
	return []struct {
		name string
		k    *btcec.ModNScalar
	}{
		{"0", scalarInt(0)},
		{"1", scalarInt(1)},
		{"2", scalarInt(2)},
		{"3", scalarInt(3)},
		{"15", scalarInt(15)},
		{"16", scalarInt(16)},
		{"17", scalarInt(17)},
		{"255", scalarInt(255)},
		{"256", scalarInt(256)},
		{"2^32-1", scalarInt(0xffffffff)},
		{"2^64", scalarHex(t, "010000000000000000")},
		{"2^128+1", scalarHex(t, "0100000000000000000000000000000001")},
		{"2^255", scalarHex(t, "8000000000000000000000000000000000000000000000000000000000000000")},
		{"nibbles 0f", scalarHex(t, "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f")},
		{"nibbles f0", scalarHex(t, "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0")},
		{"(n-1)/2", scalarHex(t, "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0")},
		{"(n+1)/2", scalarHex(t, "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a1")},
		{"n-16", negScalar(16)},
		{"n-2", negScalar(2)},
		{"n-1", negScalar(1)},
	}
}

func TestScalarBaseMultMatchesBtcec(t *testing.T) {
	for _, tc := range edgeScalars(t) {
		t.Run(tc.name, func(t *testing.T) {
			var got btcec.JacobianPoint
			ScalarBaseMult(tc.k, &got)
			if want := wantBase(tc.k); !sameRepr(&got, &want) {
				t.Fatalf("k=%s: got (%v, %v, %v), want (%v, %v, %v)", tc.name, got.X, got.Y, got.Z, want.X, want.Y, want.Z)
			}
		})
	}
	r := newRand(t)
	for i := range randomInputs() {
		k := randScalar(r)
		var got btcec.JacobianPoint
		ScalarBaseMult(k, &got)
		if want := wantBase(k); !sameRepr(&got, &want) {
			t.Fatalf("random input %d: k·G differs from btcec", i)
		}
	}
}

func TestScalarMultMatchesBtcec(t *testing.T) {
	r := newRand(t)
	g := generator()
	points := []struct {
		name string
		p    btcec.JacobianPoint
	}{
		{"G", g},
		{"-G", negPoint(g)},
		{"2G", wantMult(scalarInt(2), &g)},
		{"random affine", randPoint(r, true)},
		{"random jacobian", randPoint(r, false)},
		{"infinity", btcec.JacobianPoint{}},
	}
	// A Jacobian infinity with junk X, Y must still act as infinity.
	var junkInf btcec.JacobianPoint
	junkInf.X.SetInt(5)
	junkInf.Y.SetInt(9)
	points = append(points, struct {
		name string
		p    btcec.JacobianPoint
	}{"infinity (X,Y≠0)", junkInf})

	for _, pc := range points {
		for _, kc := range edgeScalars(t) {
			t.Run(pc.name+"/"+kc.name, func(t *testing.T) {
				p := pc.p
				var got btcec.JacobianPoint
				ScalarMult(kc.k, &p, &got)
				want := wantMult(kc.k, &pc.p)
				if pc.p.Z.IsZero() {
					want = btcec.JacobianPoint{}
				}
				if !sameRepr(&got, &want) {
					t.Fatalf("got (%v, %v, %v), want (%v, %v, %v)", got.X, got.Y, got.Z, want.X, want.Y, want.Z)
				}
			})
		}
	}
	for i := range randomInputs() {
		k := randScalar(r)
		p := randPoint(r, i%2 == 0)
		var got btcec.JacobianPoint
		ScalarMult(k, &p, &got)
		if want := wantMult(k, &p); !sameRepr(&got, &want) {
			t.Fatalf("random input %d: k·P differs from btcec", i)
		}
	}
}

// TestGroupLaws checks results against each other rather than btcec, so a
// shared misconception with btcec's code could not hide.
func TestGroupLaws(t *testing.T) {
	r := newRand(t)
	g := generator()
	for i := range 50 {
		a, b := randScalar(r), randScalar(r)
		var aG, bG, abG1, abG2, aGviaMult btcec.JacobianPoint
		ScalarBaseMult(a, &aG)
		ScalarMult(a, &g, &aGviaMult)
		if !sameRepr(&aG, &aGviaMult) {
			t.Fatalf("case %d: ScalarBaseMult(a) != ScalarMult(a, G)", i)
		}
		ScalarBaseMult(b, &bG)
		ScalarMult(a, &bG, &abG1)
		ab := new(btcec.ModNScalar).Mul2(a, b)
		ScalarBaseMult(ab, &abG2)
		if !sameRepr(&abG1, &abG2) {
			t.Fatalf("case %d: a·(b·G) != (a·b)·G", i)
		}
		var negA, sum btcec.JacobianPoint
		ScalarBaseMult(new(btcec.ModNScalar).NegateVal(a), &negA)
		btcec.AddNonConst(&aG, &negA, &sum)
		if !sum.Z.Normalize().IsZero() {
			t.Fatalf("case %d: a·G + (−a)·G is not infinity", i)
		}
	}
}

func TestScalarMultAliasing(t *testing.T) {
	r := newRand(t)
	k := randScalar(r)
	p := randPoint(r, false)
	want := wantMult(k, &p)
	ScalarMult(k, &p, &p)
	if !sameRepr(&p, &want) {
		t.Fatal("ScalarMult with result aliasing p gave a wrong result")
	}
}

func TestScalarBaseMultConcurrentFirstUse(t *testing.T) {
	r := newRand(t)
	ks := make([]*btcec.ModNScalar, 8)
	for i := range ks {
		ks[i] = randScalar(r)
	}
	var wg sync.WaitGroup
	got := make([]btcec.JacobianPoint, len(ks))
	for i := range ks {
		wg.Go(func() { ScalarBaseMult(ks[i], &got[i]) })
	}
	wg.Wait()
	for i := range ks {
		if want := wantBase(ks[i]); !sameRepr(&got[i], &want) {
			t.Fatalf("goroutine %d: wrong k·G", i)
		}
	}
}

func TestECDHMatchesBtcec(t *testing.T) {
	r := newRand(t)
	n := randomInputs() / 10
	for i := range n {
		k := randScalar(r)
		if i == 0 {
			k = negScalar(1)
		}
		kb := k.Bytes()
		priv, _ := btcec.PrivKeyFromBytes(kb[:])
		pub := randPoint(r, true)
		pubKey := btcec.NewPublicKey(&pub.X, &pub.Y)
		got, err := ECDH(k, pubKey)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if want := btcec.GenerateSharedSecret(priv, pubKey); !bytes.Equal(got[:], want) {
			t.Fatalf("case %d: ECDH differs from btcec.GenerateSharedSecret", i)
		}
	}
}

func TestECDHErrors(t *testing.T) {
	g := generator()
	gKey := btcec.NewPublicKey(&g.X, &g.Y)
	var badY btcec.FieldVal
	badY.SetInt(3)
	offCurve := btcec.NewPublicKey(&g.X, &badY)
	tests := []struct {
		name string
		k    *btcec.ModNScalar
		pub  *btcec.PublicKey
		want error
	}{
		{"zero scalar", scalarInt(0), gKey, ErrPointAtInfinity},
		{"nil public key", scalarInt(1), nil, ErrInvalidPublicKey},
		{"off-curve public key", scalarInt(1), offCurve, ErrInvalidPublicKey},
		{"valid", scalarInt(1), gKey, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := ECDH(tc.k, tc.pub)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err != nil && out != ([32]byte{}) {
				t.Fatal("output not zero on error")
			}
			if err == nil && !bytes.Equal(out[:], g.X.Bytes()[:]) {
				t.Fatal("1·G shared x is not G.x")
			}
		})
	}
}
