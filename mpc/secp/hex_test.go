package secp

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
)

func TestHexNibble(t *testing.T) {
	for c := 0; c < 256; c++ {
		v, bad := hexNibble(byte(c))
		want, err := strconv.ParseUint(string([]byte{byte(c)}), 16, 8)
		if (err != nil) != (bad == 1) || (err == nil && uint64(v) != want) {
			t.Fatalf("char %#x: got %d bad=%d, want %d err=%v", c, v, bad, want, err)
		}
	}
}

func TestDecodeHex(t *testing.T) {
	for range 100 {
		var b, dec [32]byte
		rand.Read(b[:])
		for _, s := range []string{hex.EncodeToString(b[:]), strings.ToUpper(hex.EncodeToString(b[:]))} {
			if bad := DecodeHex(dec[:], []byte(s)); bad != 0 || dec != b {
				t.Fatalf("DecodeHex(%s) = %x, bad %d", s, dec, bad)
			}
		}
	}
	var dst [2]byte
	if DecodeHex(dst[:], []byte("0g00")) != 1 {
		t.Fatal("non-hex accepted")
	}
}
