package secp

import (
	"math/big"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// TestScalarBaseMultRecodingEdges: scalars whose signed digits sit at the
// edges of the recoding (±32, a carry through every window, the largest
// scalar) give btcec's k·G.
func TestScalarBaseMultRecodingEdges(t *testing.T) {
	n := btcec.S256().N
	var cases []*big.Int
	for _, v := range []int64{0, 1, 2, 31, 32, 33, 63, 64, 65, 95, 96, 97, 2047, 2048, 2049} {
		cases = append(cases, big.NewInt(v))
	}
	one := big.NewInt(1)
	for _, bits := range []uint{6, 12, 126, 252, 255} {
		p := new(big.Int).Lsh(one, bits)
		cases = append(cases, p, new(big.Int).Sub(p, one), new(big.Int).Add(p, big.NewInt(32)))
	}
	// Every window 32 (no carries) and every window 33 (carries all along).
	w32, w33 := new(big.Int), new(big.Int)
	for w := range 42 {
		w32.Add(w32, new(big.Int).Lsh(big.NewInt(32), uint(6*w)))
		w33.Add(w33, new(big.Int).Lsh(big.NewInt(33), uint(6*w)))
	}
	cases = append(cases, w32, w33)
	for _, d := range []int64{1, 2, 32, 33, 64} {
		cases = append(cases, new(big.Int).Sub(n, big.NewInt(d)))
	}
	for _, c := range cases {
		var b [32]byte
		new(big.Int).Mod(c, n).FillBytes(b[:])
		var k btcec.ModNScalar
		k.SetBytes(&b)
		var got, want btcec.JacobianPoint
		ScalarBaseMult(&k, &got)
		btcec.ScalarBaseMultNonConst(&k, &want)
		want.ToAffine()
		if k.IsZero() {
			if !got.Z.IsZero() {
				t.Errorf("0·G is not infinity")
			}
			continue
		}
		if !got.X.Equals(&want.X) || !got.Y.Equals(&want.Y) || !got.Z.IsOne() {
			t.Errorf("k = %x: k·G differs from btcec's", b)
		}
	}
}
