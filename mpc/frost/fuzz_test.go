package frost

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// fuzzSeeds adds the public nonces of the nonce_agg vectors (valid and
// invalid) and some edge encodings.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var v struct {
		PubNonces []string `json:"pubnonces"`
	}
	edges := []string{
		"0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798",
		"02FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC30",
		"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
		"000000000000000000000000000000000000000000000000000000000000000000",
	}
	var seeds [][]byte
	for _, s := range edges {
		b, _ := hex.DecodeString(s)
		seeds = append(seeds, b)
	}
	raw, err := os.ReadFile(filepath.Join(vectorsDir(f), "bip445", "nonce_agg_vectors.json"))
	// Only the nonce pool is needed here; the full file is checked by
	// TestNonceAggVectors.
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	for _, s := range v.PubNonces {
		b, _ := hex.DecodeString(s)
		seeds = append(seeds, b, b[:33], b[33:])
	}
	seeds = append(seeds, nil, make([]byte, 66))
	return seeds
}

// btcecCompressed reports whether b is a valid compressed point per btcec.
func btcecCompressed(b []byte) bool {
	if len(b) != 33 || (b[0] != 2 && b[0] != 3) {
		return false
	}
	_, err := btcec.ParsePubKey(b)
	return err == nil
}

func FuzzParsePubShare(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParsePubShare(b)
		if (err == nil) != btcecCompressed(b) {
			t.Fatalf("ParsePubShare(%x) err = %v, btcec disagrees", b, err)
		}
		if err == nil && !bytes.Equal(ps[:], b) {
			t.Fatal("decoded pubshare differs from input")
		}
		if err == nil {
			p, _ := cpoint(b)
			if enc := cbytes(&p); !bytes.Equal(enc[:], b) {
				t.Fatal("re-encoding differs")
			}
		}
	})
}

func FuzzParsePubNonce(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pn, err := ParsePubNonce(b)
		want := len(b) == 66 && btcecCompressed(b[:33]) && btcecCompressed(b[33:])
		if (err == nil) != want {
			t.Fatalf("ParsePubNonce(%x) err = %v, want ok = %v", b, err, want)
		}
		if err == nil {
			if !bytes.Equal(pn[:], b) {
				t.Fatal("decoded pubnonce differs from input")
			}
			if _, err := NonceAgg([]PubNonce{pn}); err != nil {
				t.Fatalf("NonceAgg of a parsed nonce: %v", err)
			}
		}
	})
}

func FuzzParseAggNonce(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		an, err := ParseAggNonce(b)
		half := func(h []byte) bool { return bytes.Equal(h, make([]byte, 33)) || btcecCompressed(h) }
		want := len(b) == 66 && half(b[:33]) && half(b[33:])
		if (err == nil) != want {
			t.Fatalf("ParseAggNonce(%x) err = %v, want ok = %v", b, err, want)
		}
		if err == nil && !bytes.Equal(an[:], b) {
			t.Fatal("decoded aggnonce differs from input")
		}
	})
}

func FuzzParsePartialSig(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	order := btcec.S256().N
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParsePartialSig(b)
		want := len(b) == 32 && new(big.Int).SetBytes(b).Cmp(order) < 0
		if (err == nil) != want {
			t.Fatalf("ParsePartialSig(%x) err = %v, want ok = %v", b, err, want)
		}
		if err == nil && !bytes.Equal(ps[:], b) {
			t.Fatal("decoded psig differs from input")
		}
	})
}

// FuzzNonceAgg: aggregation of arbitrary 66-byte nonces never panics, blames
// the first undecodable half in the spec's order (all first halves, then all
// second halves), and otherwise yields a decodable aggregate nonce.
func FuzzNonceAgg(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var pns []PubNonce
		for len(b) >= 66 && len(pns) < 8 {
			pns = append(pns, PubNonce(b[:66]))
			b = b[66:]
		}
		culprit := -1
		for j := 0; j < 2 && culprit < 0; j++ {
			for i := range pns {
				if !btcecCompressed(pns[i][j*33 : (j+1)*33]) {
					culprit = i
					break
				}
			}
		}
		agg, err := NonceAgg(pns)
		if culprit < 0 {
			if err != nil {
				t.Fatalf("NonceAgg: %v", err)
			}
			if _, err := ParseAggNonce(agg[:]); err != nil {
				t.Fatalf("aggregate does not parse: %v", err)
			}
			return
		}
		ce, ok := err.(*InvalidContributionError)
		if !ok || ce.Signer != culprit || ce.Contrib != ContribPubNonce {
			t.Fatalf("NonceAgg error %v, want pubnonce of signer %d", err, culprit)
		}
	})
}
