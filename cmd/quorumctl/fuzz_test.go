package main

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
)

// FuzzParsePrivateKeyHex checks the constant-time decoder against
// encoding/hex and btcec's range check, and that a rejection never carries
// the input.
func FuzzParsePrivateKeyHex(f *testing.F) {
	for _, s := range []string{
		strings.Repeat("0", 63) + "1",
		"fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140",
		"fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
		strings.Repeat("0", 64),
		" B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF\n",
		strings.Repeat("g", 64),
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := parsePrivateKeyHex(s)
		want, decErr := hex.DecodeString(strings.TrimSpace(s))
		valid := decErr == nil && len(want) == 32
		if valid {
			var sc btcec.ModNScalar
			valid = !sc.SetByteSlice(want) && !sc.IsZero()
		}
		if valid != (err == nil) {
			t.Fatalf("parsePrivateKeyHex(%q): err %v, want valid=%v", s, err, valid)
		}
		if err != nil {
			if err != errBadPrivateKey {
				t.Fatalf("error %v is not the fixed errBadPrivateKey", err)
			}
			return
		}
		if !bytes.Equal(k.b[:], want) {
			t.Fatalf("decoded %x, want %x", k.b, want)
		}
	})
}
