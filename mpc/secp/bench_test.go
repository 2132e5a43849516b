package secp

import (
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// benchInputs returns a fixed-size pool of random scalars and points so the
// benchmarks do not measure input generation.
func benchInputs(b *testing.B) ([]*btcec.ModNScalar, []btcec.JacobianPoint) {
	r := newRand(b)
	ks := make([]*btcec.ModNScalar, 64)
	ps := make([]btcec.JacobianPoint, len(ks))
	for i := range ks {
		ks[i] = randScalar(r)
		ps[i] = randPoint(r, true)
	}
	baseTable()
	return ks, ps
}

func BenchmarkScalarBaseMult(b *testing.B) {
	ks, _ := benchInputs(b)
	var out btcec.JacobianPoint
	for i := 0; b.Loop(); i++ {
		ScalarBaseMult(ks[i%len(ks)], &out)
	}
}

func BenchmarkScalarBaseMultNonConst(b *testing.B) {
	ks, _ := benchInputs(b)
	var out btcec.JacobianPoint
	for i := 0; b.Loop(); i++ {
		btcec.ScalarBaseMultNonConst(ks[i%len(ks)], &out)
		out.ToAffine()
	}
}

func BenchmarkScalarMult(b *testing.B) {
	ks, ps := benchInputs(b)
	var out btcec.JacobianPoint
	for i := 0; b.Loop(); i++ {
		ScalarMult(ks[i%len(ks)], &ps[i%len(ps)], &out)
	}
}

func BenchmarkScalarMultNonConst(b *testing.B) {
	ks, ps := benchInputs(b)
	var out btcec.JacobianPoint
	for i := 0; b.Loop(); i++ {
		btcec.ScalarMultNonConst(ks[i%len(ks)], &ps[i%len(ps)], &out)
		out.ToAffine()
	}
}

func BenchmarkECDH(b *testing.B) {
	ks, ps := benchInputs(b)
	pubs := make([]*btcec.PublicKey, len(ps))
	for i := range ps {
		pubs[i] = btcec.NewPublicKey(&ps[i].X, &ps[i].Y)
	}
	for i := 0; b.Loop(); i++ {
		if _, err := ECDH(ks[i%len(ks)], pubs[i%len(pubs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerateSharedSecretNonConst(b *testing.B) {
	ks, ps := benchInputs(b)
	privs := make([]*btcec.PrivateKey, len(ks))
	pubs := make([]*btcec.PublicKey, len(ps))
	for i := range ps {
		kb := ks[i].Bytes()
		privs[i], _ = btcec.PrivKeyFromBytes(kb[:])
		pubs[i] = btcec.NewPublicKey(&ps[i].X, &ps[i].Y)
	}
	for i := 0; b.Loop(); i++ {
		btcec.GenerateSharedSecret(privs[i%len(privs)], pubs[i%len(pubs)])
	}
}

// Building the 64 KiB base table happens once per process.
func BenchmarkBaseTableBuild(b *testing.B) {
	for b.Loop() {
		_ = buildBaseTable()
	}
}
