package quorum

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"

	"github.com/quorumd/quorumd/daemon"
)

// TestTweaksMatchPrivateDerivation checks the public derivation (CKDpub as
// BIP445 plain tweaks, then an x-only tweak) against the same derivation
// done on the private key with btcec: CKDpriv, then BIP341-style negation
// and addition.
func TestTweaksMatchPrivateDerivation(t *testing.T) {
	for trial := range 50 {
		priv, err := btcec.NewPrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		q := [33]byte(priv.PubKey().SerializeCompressed())
		path := make([]uint32, trial%5)
		for i := range path {
			var b [4]byte
			rand.Read(b[:])
			path[i] = binary.BigEndian.Uint32(b[:]) >> 1
		}
		var tw *[32]byte
		if trial%2 == 0 {
			var b [32]byte
			rand.Read(b[:])
			b[0] &= 0x7f
			tw = &b
		}
		_, got, err := Tweaks(q, daemon.Tweaks{Path: path, Tweak: tw})
		if err != nil {
			t.Fatal(err)
		}

		k := priv.Key
		c := ChainCode(q)
		for _, i := range path {
			pub := btcec.PrivKeyFromScalar(&k).PubKey().SerializeCompressed()
			mac := hmac.New(sha512.New, c[:])
			mac.Write(pub)
			mac.Write(binary.BigEndian.AppendUint32(nil, i))
			sum := mac.Sum(nil)
			var il btcec.ModNScalar
			il.SetByteSlice(sum[:32])
			k.Add(&il)
			c = [32]byte(sum[32:])
		}
		if tw != nil {
			if btcec.PrivKeyFromScalar(&k).PubKey().SerializeCompressed()[0] == 3 {
				k.Negate()
			}
			var tv btcec.ModNScalar
			tv.SetBytes(tw)
			k.Add(&tv)
		}
		want := schnorr.SerializePubKey(btcec.PrivKeyFromScalar(&k).PubKey())
		if string(got[:]) != string(want) {
			t.Fatalf("trial %d: derived %x, private derivation gives %x", trial, got, want)
		}
	}
}

func TestTweaksRejectHardened(t *testing.T) {
	priv, _ := btcec.NewPrivateKey()
	q := [33]byte(priv.PubKey().SerializeCompressed())
	if _, _, err := Tweaks(q, daemon.Tweaks{Path: []uint32{1 << 31}}); err == nil {
		t.Fatal("hardened index accepted")
	}
}
